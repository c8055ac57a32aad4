// The demo page's API client (web/api.js: openapi-fetch typed by web/api/schema.d.ts) against a
// real HTTP server on 127.0.0.1, without a browser: what it sends, and how each kind of answer
// becomes data or an ApiError, the page's one error path. scripts/api-client.sh runs it with
// node's test runner.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { after, before, test } from 'node:test';
import { ApiError, createApi } from '../../web/api.js';

// Each test sets how the server answers; every request is kept for the test to look at.
let answer = (request, response) => response.writeHead(500).end();
const requests = [];
let server;
let baseUrl;
let nobodyUrl; // a 127.0.0.1 port nothing listens on

before(async () => {
  server = createServer((request, response) => {
    let body = '';
    request.on('data', (chunk) => { body += chunk; });
    request.on('end', () => {
      requests.push({ method: request.method, url: request.url, headers: request.headers, body });
      answer(request, response);
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${server.address().port}/`; // the trailing slash is dropped
  const closed = createServer();
  await new Promise((resolve) => closed.listen(0, '127.0.0.1', resolve));
  nobodyUrl = `http://127.0.0.1:${closed.address().port}`;
  await new Promise((resolve) => closed.close(resolve));
});

after(() => {
  server.closeAllConnections();
  server.close();
});

function json(status, body, headers = {}) {
  return (request, response) => {
    response.writeHead(status, { 'Content-Type': 'application/json', ...headers }).end(JSON.stringify(body));
  };
}

/** The ApiError a call rejects with. */
async function failure(call) {
  try {
    await call;
  } catch (err) {
    assert.ok(err instanceof ApiError, `an ApiError, not ${err}`);
    return err;
  }
  return assert.fail('the call succeeded');
}

test('a success is the parsed JSON; bodies go as JSON, the session as a bearer token', async () => {
  requests.length = 0;
  const started = { auth_server: { id: 'sandbox', url: 'http://x' }, auth_req_id: 'a', nonce: 'n', flow_id: '0123456789abcdef' };
  answer = json(200, started);
  const body = { client_id: 'sandbox-client', login_hint: '+447400123456', locale: 'en-GB' };
  assert.deepEqual(await createApi(baseUrl).startVerification(body), started);
  const [sent] = requests;
  assert.equal(sent.method, 'POST');
  assert.equal(sent.url, '/sms/auth');
  assert.equal(sent.headers['content-type'], 'application/json');
  assert.equal(sent.headers.accept, 'application/json');
  assert.equal(sent.headers.authorization, undefined, 'no session, no Authorization');
  assert.deepEqual(JSON.parse(sent.body), body);

  requests.length = 0;
  answer = json(200, { userinfo: { phone_number: '+447400123456' }, client_id: 'c', server_id: 's', verified_at: 1, expires_at: 2 });
  const info = await createApi(baseUrl).userInfo('s3ss10n');
  assert.equal(info.userinfo.phone_number, '+447400123456');
  assert.equal(requests[0].method, 'GET');
  assert.equal(requests[0].url, '/user/info');
  assert.equal(requests[0].headers.authorization, 'Bearer s3ss10n');
  assert.equal(requests[0].headers['content-type'], undefined, 'no body, no Content-Type');
});

test("an Error body becomes an ApiError with its code, status, message, retry_after and data", async () => {
  answer = json(429, {
    error: 'rate_limited', status: 429, message: 'wait', retry_after: 27, data: { limit: 'resend_delay', retry_after: 27 },
  }, { 'Retry-After': '27' });
  const err = await failure(createApi(baseUrl).startVerification({ client_id: 'c', login_hint: '+447400123456' }));
  assert.equal(err.status, 429);
  assert.equal(err.code, 'rate_limited');
  assert.equal(err.message, 'wait');
  assert.equal(err.retryAfter, 27);
  assert.deepEqual(err.data, { limit: 'resend_delay', retry_after: 27 });

  // An auth server's own OAuth code comes through as it is; no retry_after, no data.
  answer = json(400, { error: 'unknown_user_id', status: 400, message: 'refused' });
  const upstream = await failure(createApi(baseUrl).startVerification({ client_id: 'c', login_hint: '+447400123456' }));
  assert.deepEqual([upstream.status, upstream.code, upstream.retryAfter, upstream.data], [400, 'unknown_user_id', null, null]);
});

test('a bare {"message"} body (API Gateway) goes by its status, the wait by Retry-After', async () => {
  answer = json(429, { message: 'Too Many Requests' }, { 'Retry-After': '3' });
  const err = await failure(createApi(baseUrl).checkCode({ code: '123456', auth_req_id: 'a', client_id: 'c', nonce: 'n' }));
  assert.deepEqual([err.status, err.code, err.retryAfter, err.data], [429, 'http_429', 3, null]);

  // Not even JSON: the same.
  answer = (request, response) => response.writeHead(502, { 'Content-Type': 'text/html' }).end('<h1>Bad Gateway</h1>');
  const html = await failure(createApi(baseUrl).clients());
  assert.deepEqual([html.status, html.code, html.retryAfter], [502, 'http_502', null]);
});

test('a 204 has no body to read: the call resolves with nothing', async () => {
  requests.length = 0;
  answer = (request, response) => response.writeHead(204, { 'Cache-Control': 'no-store' }).end();
  assert.equal(await createApi(baseUrl).logout('s3ss10n'), undefined);
  assert.equal(requests[0].url, '/user/logout');
  assert.equal(requests[0].headers.authorization, 'Bearer s3ss10n');
});

test('a success that is not JSON (a web page where the API should be) is invalid_response', async () => {
  answer = (request, response) => response.writeHead(200, { 'Content-Type': 'text/html' }).end('<!doctype html>');
  const err = await failure(createApi(baseUrl).clients());
  assert.deepEqual([err.status, err.code], [200, 'invalid_response']);
});

test('no answer is network_error, a slow one network_timeout, both with status 0', async () => {
  // A connection dropped without an answer.
  answer = (request) => request.socket.destroy();
  const dropped = await failure(createApi(baseUrl).clients());
  assert.deepEqual([dropped.status, dropped.code], [0, 'network_error']);

  const refused = await failure(createApi(nobodyUrl).clients());
  assert.deepEqual([refused.status, refused.code], [0, 'network_error']);

  answer = () => {}; // never answers
  const slow = await failure(createApi(baseUrl, { timeoutMs: 200 }).clients());
  assert.deepEqual([slow.status, slow.code], [0, 'network_timeout']);
});

test('log is fire-and-forget: it sends the data with the flow id and never throws', async () => {
  requests.length = 0;
  let logged;
  const arrived = new Promise((resolve) => { logged = resolve; });
  answer = (request, response) => {
    response.writeHead(200, { 'Content-Type': 'text/plain' }).end('OK');
    logged();
  };
  assert.equal(createApi(baseUrl).log({ event: 'step_shown', platform: 'web' }, '0123456789abcdef'), undefined);
  await arrived;
  assert.equal(requests[0].url, '/sms/log');
  assert.deepEqual(JSON.parse(requests[0].body), { data: { event: 'step_shown', platform: 'web' }, flow_id: '0123456789abcdef' });

  // Without a server, nothing is thrown and no rejection is left unhandled (the runner would fail).
  createApi(nobodyUrl).log({ event: 'x' });
  await new Promise((resolve) => setTimeout(resolve, 200));
});
