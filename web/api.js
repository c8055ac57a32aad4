// @ts-check
// The page's client for the SMS verification API: openapi-fetch, typed by api/schema.d.ts, which
// openapi-typescript generates from openapi.yaml. scripts/api-client.sh regenerates that file,
// fails when the committed copy differs and type-checks this file and app.js against it, so a
// path, field or answer the contract no longer has fails the test command rather than a user.
//
// Every failure, the API's own errors, API Gateway's bare {"message"} bodies and network
// failures alike, becomes an ApiError with a stable `code` to switch on, so the page has one
// error path.
import createClient from './vendor/openapi-fetch/index.js';

/** @typedef {import('./api/schema').paths} Paths */
/** @typedef {import('./api/schema').components['schemas']} Schemas */

/**
 * An ApiError's code: one of the API's (`ErrorCode`, extensible), an auth server's own OAuth
 * code, or one this client gives when there is no error body to read: `network_error` and
 * `network_timeout` (no answer, status 0), `invalid_response` (a success that is not JSON, such
 * as a web server's page where the API should be), `http_<status>` (API Gateway's own answers).
 * @typedef {Schemas['ErrorCode'] | 'network_error' | 'network_timeout' | 'invalid_response'
 *   | `http_${number}` | (string & {})} Code
 */

/** An API answer that is not a success, or no answer at all (status 0). */
export class ApiError extends Error {
  /**
   * @param {number} status
   * @param {Code} code
   * @param {{ message?: string, retryAfter?: number | null, data?: Schemas['Error']['data'] | null }} [details]
   */
  constructor(status, code, { message = '', retryAfter = null, data = null } = {}) {
    super(message || code);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
    this.data = data;
  }
}

// /sms/token may wait up to the backend's upstream budget (20 s by default) before it answers.
const TIMEOUT_MS = 35_000;

/**
 * @param {string} [baseUrl] the API's base URL; "" is the page's own origin
 * @param {{ timeoutMs?: number }} [options] how long a call may wait for its answer
 */
export function createApi(baseUrl, { timeoutMs = TIMEOUT_MS } = {}) {
  /** @type {import('./vendor/openapi-fetch/index.js').Client<Paths>} */
  const client = createClient({
    baseUrl: String(baseUrl || ''),
    headers: { Accept: 'application/json' },
    cache: 'no-store',
    credentials: 'same-origin',
  });
  client.use({
    // Only a request that got no answer lands here (offline, refused by CORS, timed out).
    onError({ error }) {
      const err = /** @type {{ name?: unknown, message?: unknown } | null} */ (error);
      const code = err && err.name === 'TimeoutError' ? 'network_timeout' : 'network_error';
      return new ApiError(0, code, { message: String(err && err.message) });
    },
    // openapi-fetch would throw a SyntaxError on a success that is not JSON: say what it is.
    onResponse({ response, options }) {
      const empty = response.status === 204 || response.headers.get('content-length') === '0';
      const type = response.headers.get('content-type') || '';
      if (response.ok && options.parseAs === 'json' && !empty && !type.includes('json')) {
        throw new ApiError(response.status, 'invalid_response', { message: `a ${response.status} answer of type "${type}"` });
      }
      return undefined;
    },
  });

  const timeout = () => AbortSignal.timeout(timeoutMs);
  // The session goes as a bearer token: the sms_session cookie is HttpOnly and only reaches an
  // API on this page's own site, while the header works wherever the page is hosted.
  /** @param {string | null} session */
  const bearer = (session) => (session ? { Authorization: `Bearer ${session}` } : {});

  return {
    /** @returns {Promise<Schemas['SmsClientsResponse']>} */
    clients: () => settle(client.GET('/sms/clients', { signal: timeout() })),
    /**
     * @param {Schemas['SmsAuthRequest']} body
     * @returns {Promise<Schemas['SmsAuthResponse']>}
     */
    startVerification: (body) => settle(client.POST('/sms/auth', { body, signal: timeout() })),
    /**
     * @param {Schemas['SmsTokenRequest']} body
     * @returns {Promise<Schemas['SmsTokenResponse']>}
     */
    checkCode: (body) => settle(client.POST('/sms/token', { body, signal: timeout() })),
    /**
     * @param {string | null} session
     * @returns {Promise<Schemas['UserInfoResponse']>}
     */
    userInfo: (session) => settle(client.GET('/user/info', { headers: bearer(session), signal: timeout() })),
    /**
     * @param {string | null} session
     * @returns {Promise<void>}
     */
    logout: (session) => settle(client.POST('/user/logout', { headers: bearer(session), signal: timeout() })),

    /**
     * Flow data for the service logs: fire-and-forget. It never delays or breaks the page, and
     * `keepalive` lets the last event of a page that is being closed still go out.
     * @param {Schemas['SmsLogRequest']['data']} data
     * @param {string | null} [flowId]
     */
    log(data, flowId) {
      const body = flowId ? { data, flow_id: flowId } : { data };
      // Its answer is a text/plain "OK", nothing to read.
      client
        .POST('/sms/log', { body, parseAs: 'text', credentials: 'omit', keepalive: true })
        .catch(() => {});
    },
  };
}

/**
 * The answer's data, or the ApiError its failure maps to.
 * @template T
 * @param {Promise<{ data?: T, error?: unknown, response: Response }>} pending
 * @returns {Promise<T>}
 */
async function settle(pending) {
  const { data, error, response } = await pending;
  if (response.ok) return /** @type {T} */ (data);
  // Not always the Error shape: API Gateway answers {"message"} itself (throttling, a crash).
  const body = /** @type {Record<string, unknown>} */ (error && typeof error === 'object' ? error : {});
  const header = Number.parseInt(response.headers.get('retry-after') || '', 10);
  const retryAfter = typeof body.retry_after === 'number' && Number.isInteger(body.retry_after)
    ? body.retry_after
    : Number.isFinite(header) ? header : null;
  // A body without `error`: go by status.
  const code = typeof body.error === 'string' && body.error ? body.error : `http_${response.status}`;
  throw new ApiError(response.status, code, {
    message: typeof body.message === 'string' ? body.message : '',
    retryAfter,
    data: body.data && typeof body.data === 'object' ? /** @type {Schemas['Error']['data']} */ (body.data) : null,
  });
}
