// A small client for the SMS verification API (see openapi.yaml). Every failure, the API's own
// errors, API Gateway's bare {"message"} bodies and network failures alike, becomes an ApiError
// with a stable `code` to switch on, so the page has one error path.

/** An API answer that is not a success, or no answer at all (status 0). */
export class ApiError extends Error {
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

export function createApi(baseUrl) {
  const base = String(baseUrl || '').replace(/\/+$/, '');

  async function request(method, path, { body, session } = {}) {
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    // The session goes as a bearer token: the sms_session cookie is HttpOnly and only reaches an
    // API on this page's own site, while the header works wherever the page is hosted.
    if (session) headers.Authorization = `Bearer ${session}`;
    let response;
    try {
      response = await fetch(base + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: 'no-store',
        credentials: 'same-origin',
        signal: AbortSignal.timeout(TIMEOUT_MS),
      });
    } catch (err) {
      const code = err && err.name === 'TimeoutError' ? 'network_timeout' : 'network_error';
      throw new ApiError(0, code, { message: String(err && err.message) });
    }
    const type = response.headers.get('content-type') || '';
    let payload = null;
    if (type.includes('application/json')) {
      payload = await response.json().catch(() => null);
    } else if (response.status !== 204) {
      payload = await response.text().catch(() => '');
    }
    if (response.ok) return payload;

    const error = payload && typeof payload === 'object' ? payload : {};
    const header = Number.parseInt(response.headers.get('retry-after') || '', 10);
    const retryAfter = Number.isInteger(error.retry_after)
      ? error.retry_after
      : Number.isFinite(header) ? header : null;
    // A body without `error` comes from API Gateway itself (throttling, a crash): go by status.
    const code = typeof error.error === 'string' ? error.error : `http_${response.status}`;
    throw new ApiError(response.status, code, {
      message: typeof error.message === 'string' ? error.message : '',
      retryAfter,
      data: error.data && typeof error.data === 'object' ? error.data : null,
    });
  }

  return {
    clients: () => request('GET', '/sms/clients'),
    startVerification: (body) => request('POST', '/sms/auth', { body }),
    checkCode: (body) => request('POST', '/sms/token', { body }),
    userInfo: (session) => request('GET', '/user/info', { session }),
    logout: (session) => request('POST', '/user/logout', { session }),

    /**
     * Flow data for the service logs: fire-and-forget. It never delays or breaks the page, and
     * `keepalive` lets the last event of a page that is being closed still go out.
     */
    log(data, flowId) {
      const body = flowId ? { data, flow_id: flowId } : { data };
      try {
        fetch(base + '/sms/log', {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify(body),
          cache: 'no-store',
          credentials: 'omit',
          keepalive: true,
        }).catch(() => {});
      } catch {
        // Logging must never be the reason the page fails.
      }
    },
  };
}
