// @ts-check
// The demo page: phone number → SMS code → verified session, on the API of openapi.yaml.
// Plain ES module, no build step. One step of the flow is visible at a time; each step change
// moves the focus to the new step's heading or first field, and every message goes to one
// polite live region (plus the field it concerns). scripts/api-client.sh type-checks it: the
// calls of the API client (api.js) and the fields of their answers must match openapi.yaml.
import config from './config.js';
import { ApiError, createApi } from './api.js';

const lpn = globalThis.libphonenumber; // vendor/libphonenumber-js, loaded before this module
const api = createApi(config.apiBaseUrl);
// Untyped on purpose: the elements' types are index.html's, which the type check cannot see.
/** @type {(id: string) => any} */
const $ = (id) => document.getElementById(id);

const el = {
  status: $('status'),
  clientTitle: $('client-title'),
  steps: {
    loading: $('step-loading'),
    unavailable: $('step-unavailable'),
    phone: $('step-phone'),
    code: $('step-code'),
    done: $('step-done'),
  },
  unavailableText: $('unavailable-text'),
  phoneForm: $('phone-form'),
  serverField: $('server-field'),
  server: $('server'),
  country: $('country'),
  phone: $('phone'),
  phoneError: $('phone-error'),
  send: $('send'),
  challengeField: $('challenge-field'),
  challenge: $('challenge'),
  codeSentTo: $('code-sent-to'),
  codeForm: $('code-form'),
  code: $('code'),
  codeError: $('code-error'),
  verify: $('verify'),
  resend: $('resend'),
  resendWait: $('resend-wait'),
  changeNumber: $('change-number'),
  info: {
    phone: $('info-phone'),
    verified: $('info-verified'),
    expires: $('info-expires'),
    client: $('info-client'),
    server: $('info-server'),
  },
  logout: $('logout'),
};

const state = {
  step: 'loading',
  clientId: config.clientId,
  clientTitle: '',
  // The CAPTCHA widget and its token, when the client requires a challenge.
  challenge: null,
  serverId: null, // null: the API's default server
  allowedCountries: null, // null: every country
  phone: null, // {e164, display, country} of the number the code was sent to
  // The pending verification. auth_req_id and nonce are secrets: kept in memory only, sent only
  // to /sms/token, never logged or stored.
  verification: null,
  flowId: null, // joins this page's log lines to the backend's lines of the same flow
  session: null, // the session token, in memory only (the HttpOnly cookie is the durable copy)
  busy: false,
};

// sessionStorage holds only a "was verified" hint, never the token: on reload the page asks
// /user/info with the cookie instead of sending a request that would fail for most visitors.
const VERIFIED_HINT = 'sms-demo.verified';
const FLOW_ID = /^[0-9a-f]{16}$/; // what /sms/auth returns; /sms/log refuses anything else
const regionNames = new Intl.DisplayNames([document.documentElement.lang || 'en'], { type: 'region' });
const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

// ---------------------------------------------------------------------------------------------
// Flow data for the service logs, in /sms/log's schema (README, "POST /sms/log"), which drops
// anything else: the event, the step, how long a request took (`ms`), the error code and HTTP
// status, and short tokens, flags and small numbers as `extra`. Never the phone number, the code,
// the auth_req_id, the nonce or the session. The time between events is in the lines' timestamps.
/**
 * @param {string} event
 * @param {{ ms?: number, error?: string, status?: number, [extra: string]: unknown }} [fields]
 */
function track(event, { ms, error, status, ...extra } = {}) {
  api.log(
    {
      event,
      step: state.step,
      platform: 'web',
      // JSON.stringify leaves out what is undefined: a field the event does not have.
      duration_ms: ms,
      error,
      status,
      extra: { source: 'demo_page', ...extra },
    },
    state.flowId,
  );
}

function errorFields(err) {
  // Status 0 is no answer at all (a network error): not an HTTP status, so not sent as one.
  const fields = { error: err.code, status: err.status || undefined };
  if (err.data && typeof err.data.limit === 'string') fields.limit = err.data.limit;
  if (err.data && Number.isInteger(err.data.attempts_left)) fields.attempts_left = err.data.attempts_left;
  return fields;
}

// ---------------------------------------------------------------------------------------------
// Steps, messages, busy buttons

/**
 * @param {keyof typeof el.steps} step
 * @param {{ focus?: HTMLElement }} [options]
 */
function show(step, { focus } = {}) {
  if (state.step === 'code' && step !== 'code') stopWebOtp();
  for (const [name, section] of Object.entries(el.steps)) section.hidden = name !== step;
  state.step = step;
  // The new step's heading by default: a screen reader then reads where the user is.
  (focus || el.steps[step].querySelector('h1')).focus();
  track('step_shown');
}

function setStatus(text, kind = 'info') {
  el.status.textContent = text;
  el.status.dataset.kind = kind;
}

function clearStatus() {
  el.status.textContent = '';
  delete el.status.dataset.kind;
}

function fieldError(input, errorEl, text) {
  errorEl.textContent = text || '';
  errorEl.hidden = !text;
  if (text) input.setAttribute('aria-invalid', 'true');
  else input.removeAttribute('aria-invalid');
}

// Buttons are marked aria-disabled rather than disabled while busy or waiting: a disabled button
// loses the keyboard focus, and the user would be thrown back to the top of the page.
function setBusy(button, busyText) {
  state.busy = Boolean(busyText);
  if (busyText) {
    button.dataset.label = button.textContent;
    button.textContent = busyText;
    button.setAttribute('aria-disabled', 'true');
  } else {
    if (button.dataset.label) button.textContent = button.dataset.label;
    delete button.dataset.label;
    if (!waits.has(button)) button.removeAttribute('aria-disabled');
  }
}

function isUnavailable(button) {
  return state.busy || button.getAttribute('aria-disabled') === 'true';
}

function plural(n, word) {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

function formatWait(seconds) {
  if (seconds < 60) return plural(seconds, 'second');
  const minutes = Math.ceil(seconds / 60);
  if (minutes < 60) return plural(minutes, 'minute');
  const hours = Math.floor(minutes / 60);
  const rest = minutes % 60;
  return rest ? `${plural(hours, 'hour')} ${plural(rest, 'minute')}` : plural(hours, 'hour');
}

function formatTime(epochSeconds) {
  return Number.isFinite(epochSeconds) ? dateTime.format(new Date(epochSeconds * 1000)) : 'unknown';
}

// A wait the API dictated (retry_after): the button stays unavailable and shows the time left,
// counted against the clock so a throttled background tab still ends it on time.
const waits = new Map(); // button → {timer, until, phone, limit, label, waitEl}

function startWait(button, seconds, { waitEl = null, phone = null, limit = null } = {}) {
  cancelWait(button);
  const until = Date.now() + seconds * 1000;
  const label = button.dataset.label || button.textContent;
  button.setAttribute('aria-disabled', 'true');
  const tick = () => {
    const left = Math.ceil((until - Date.now()) / 1000);
    if (left <= 0) {
      cancelWait(button);
      if (button === el.resend && state.step === 'code') setStatus('You can ask for a new code now.');
      return;
    }
    const text = `Available in ${formatWait(left)}`;
    if (waitEl) {
      waitEl.textContent = text;
      waitEl.hidden = false;
    } else {
      button.textContent = `${label} (${left < 60 ? `${left} s` : formatWait(left)})`;
    }
  };
  waits.set(button, { timer: setInterval(tick, 1000), until, phone, limit, label, waitEl });
  tick();
}

function waitLeft(button) {
  const wait = waits.get(button);
  return wait ? formatWait(Math.max(1, Math.ceil((wait.until - Date.now()) / 1000))) : '';
}

function cancelWait(button) {
  const wait = waits.get(button);
  if (!wait) return;
  clearInterval(wait.timer);
  waits.delete(button);
  if (wait.waitEl) wait.waitEl.hidden = true;
  else button.textContent = wait.label;
  if (!state.busy) button.removeAttribute('aria-disabled');
}

// ---------------------------------------------------------------------------------------------
// Start: which client and auth servers the API offers

async function init() {
  if (!lpn) {
    el.unavailableText.textContent = 'The page could not load its phone number library. Please reload.';
    show('unavailable');
    return;
  }
  let listed = null;
  try {
    listed = await api.clients();
  } catch (err) {
    // An API without GET /sms/clients: use the configured client and the default server.
    track('clients_unavailable', errorFields(err));
  }
  if (listed) {
    const clients = Array.isArray(listed.clients) ? listed.clients : [];
    const client = clients.find((c) => c.client_id === config.clientId) || clients[0];
    if (!client) {
      el.unavailableText.textContent = 'No SMS client is configured on this server, so no number can be verified here.';
      show('unavailable');
      return;
    }
    state.clientId = client.client_id;
    state.clientTitle = client.title || '';
    if (client.challenge && !(await setUpChallenge(client.challenge))) return;
    state.allowedCountries = Array.isArray(client.allowed_countries)
      ? client.allowed_countries.filter((c) => lpn.isSupportedCountry(c))
      : null;
    setUpServers(Array.isArray(listed.auth_servers) ? listed.auth_servers : []);
  }
  if (state.clientTitle) {
    el.clientTitle.textContent = state.clientTitle;
    el.clientTitle.hidden = false;
  }
  setUpCountries();

  if (sessionStorage.getItem(VERIFIED_HINT) && (await showUserInfo(null, { quiet: true }))) return;
  show('phone', { focus: el.steps.phone.querySelector('h1') });
}

// ---------------------------------------------------------------------------------------------
// The challenge (CAPTCHA), when the client requires one: the provider's widget, whose token goes
// with the next /sms/auth. A token verifies once, so the widget is reset after every send.

const CHALLENGE_WIDGETS = {
  turnstile: { src: 'https://challenges.cloudflare.com/turnstile/v0/api.js?render=explicit', global: 'turnstile' },
  hcaptcha: { src: 'https://js.hcaptcha.com/1/api.js?render=explicit', global: 'hcaptcha' },
  recaptcha: { src: 'https://www.google.com/recaptcha/api.js?render=explicit', global: 'grecaptcha' },
};

async function setUpChallenge({ provider, site_key: siteKey }) {
  const widget = CHALLENGE_WIDGETS[provider];
  const api = widget && siteKey ? await loadWidget(widget) : null;
  if (!api) {
    // The script did not load: the page's Content-Security-Policy does not allow the provider, or
    // the provider is unreachable. Without the widget no code can be sent.
    track('challenge_unavailable', { provider: String(provider) });
    el.unavailableText.textContent = 'This service needs a check this page cannot show. Please try again later.';
    show('unavailable');
    return false;
  }
  el.challengeField.hidden = false;
  const id = api.render(el.challenge, {
    sitekey: siteKey,
    callback: (token) => { state.challenge.token = token; },
    'expired-callback': () => { state.challenge.token = null; },
  });
  state.challenge = { api, id, token: null };
  return true;
}

function loadWidget({ src, global }) {
  return new Promise((resolve) => {
    const script = document.createElement('script');
    script.src = src;
    script.async = true;
    script.onerror = () => resolve(null);
    script.onload = () => {
      // reCAPTCHA defines render a moment after its script has run.
      const deadline = performance.now() + 5000;
      const ready = () => {
        const api = /** @type {any} */ (window)[global];
        if (api && typeof api.render === 'function') resolve(api);
        else if (performance.now() > deadline) resolve(null);
        else setTimeout(ready, 50);
      };
      ready();
    };
    document.head.append(script);
  });
}

// The token for this send, spent: the widget starts over for the next.
function takeChallengeToken() {
  const { api, id, token } = state.challenge;
  state.challenge.token = null;
  api.reset(id);
  return token;
}

function setUpServers(servers) {
  // The select appears only when there is a choice; otherwise the API's default server is used.
  if (servers.length < 2) return;
  for (const server of servers) {
    const option = new Option(server.id, server.id, false, Boolean(server.default));
    el.server.add(option);
  }
  state.serverId = el.server.value;
  el.server.addEventListener('change', () => {
    state.serverId = el.server.value;
  });
  el.serverField.hidden = false;
}

function setUpCountries() {
  const codes = state.allowedCountries && state.allowedCountries.length ? state.allowedCountries : lpn.getCountries();
  const options = codes
    .map((code) => ({ code, name: countryName(code) }))
    .sort((a, b) => a.name.localeCompare(b.name));
  for (const { code, name } of options) {
    el.country.add(new Option(`${name} (+${lpn.getCountryCallingCode(code)})`, code));
  }
  el.country.value = defaultCountry(codes);
}

function countryName(code) {
  try {
    return regionNames.of(code) || code;
  } catch {
    return code;
  }
}

function defaultCountry(codes) {
  const wanted = [config.defaultCountry];
  for (const language of navigator.languages || [navigator.language]) {
    try {
      wanted.push(new Intl.Locale(language).maximize().region);
    } catch {
      // An odd language tag: try the next one.
    }
  }
  return wanted.find((code) => code && codes.includes(code)) || codes[0];
}

// ---------------------------------------------------------------------------------------------
// Step 1: the phone number

/** Checks the number as the API will (libphonenumber's rules); returns {e164, ...} or {message}. */
function checkPhone() {
  const value = el.phone.value.trim();
  const selected = el.country.value;
  if (!value) return { message: 'Enter your phone number.' };
  if (/[^0-9+\s().-]/.test(value)) return { message: 'Use digits only (spaces and dashes are fine).' };
  const international = value.startsWith('+');
  const region = international ? undefined : selected;
  const where = international ? '' : ` for ${countryName(selected)}`;
  switch (lpn.validatePhoneNumberLength(value, region)) {
    case 'INVALID_COUNTRY':
      return {
        message: international
          ? 'That country code does not exist. Check the digits after +.'
          : 'Choose a country, or start the number with + and the country code.',
      };
    case 'NOT_A_NUMBER':
      return { message: 'Enter your phone number.' };
    case 'TOO_SHORT':
      return { message: `This number is too short${where}.` };
    case 'TOO_LONG':
      return { message: `This number is too long${where}.` };
    case 'INVALID_LENGTH':
      return { message: `This number does not have the right number of digits${where}.` };
    default:
  }
  const parsed = lpn.parsePhoneNumberFromString(value, region);
  if (!parsed || !parsed.isValid()) {
    return {
      message: international
        ? 'This is not a valid phone number. Check the country code and the number.'
        : `This is not a valid phone number${where}. Check it, or choose another country.`,
    };
  }
  if (state.allowedCountries && !state.allowedCountries.includes(parsed.country)) {
    return { message: `Numbers from ${countryName(parsed.country || selected)} can't be verified here.` };
  }
  return { e164: parsed.number, display: parsed.formatInternational(), country: parsed.country || null };
}

function onPhoneInput() {
  // A number typed with its country code picks the country, so both fields agree.
  const value = el.phone.value.trim();
  if (value.startsWith('+')) {
    const parsed = lpn.parsePhoneNumberFromString(value);
    if (parsed && parsed.country && [...el.country.options].some((o) => o.value === parsed.country)) {
      el.country.value = parsed.country;
    }
  }
  // Errors are shown on submit and on leaving the field; while typing they only go away.
  const check = checkPhone();
  if (!el.phoneError.hidden && check.e164) fieldError(el.phone, el.phoneError, '');
  // A wait for one number (e.g. the resend delay) does not hold back another number.
  const wait = waits.get(el.send);
  if (wait && wait.limit !== 'ip_hourly_starts' && wait.phone !== check.e164) {
    cancelWait(el.send);
    clearStatus();
  }
}

// Pressing "Send code" blurs the field first. An error shown then would move the button away
// between press and release, and the click would miss it; the submit checks the number anyway.
let sendPressed = false;

function onPhoneBlur() {
  if (sendPressed) {
    sendPressed = false;
    return;
  }
  if (!el.phone.value.trim()) return;
  const check = checkPhone();
  fieldError(el.phone, el.phoneError, check.message);
}

async function onPhoneSubmit(event) {
  event.preventDefault();
  sendPressed = false;
  if (state.busy) return;
  const check = checkPhone();
  if (check.message) {
    fieldError(el.phone, el.phoneError, check.message);
    el.phone.focus();
    track('phone_invalid');
    return;
  }
  fieldError(el.phone, el.phoneError, '');
  if (waits.has(el.send)) {
    setStatus(`Please wait: you can try again in ${waitLeft(el.send)}.`, 'error');
    return;
  }
  await sendCode(check, { resend: false });
}

// ---------------------------------------------------------------------------------------------
// Sending the SMS (first time and resend: both are a new /sms/auth, which replaces the pending
// verification of this number, so the previous code stops working)

async function sendCode(phone, { resend }) {
  const button = resend ? el.resend : el.send;
  setBusy(button, 'Sending…');
  clearStatus();
  track(resend ? 'resend_requested' : 'sms_requested', { country: phone.country, server_id: state.serverId || undefined });
  const started = performance.now();
  try {
    const body = { client_id: state.clientId, login_hint: phone.e164 };
    if (state.serverId) body.server_id = state.serverId;
    // The SMS in the user's language, where the client has a template for it (else its default).
    const locale = navigator.language;
    if (locale && locale.length <= 35) body.locale = locale;
    if (state.challenge) {
      if (!state.challenge.token) {
        setBusy(button, null);
        if (resend) show('phone', { focus: el.challengeField });
        setStatus('Complete the check above, then send the code.', 'error');
        return;
      }
      body.challenge_token = takeChallengeToken();
    }
    const answer = await api.startVerification(body);
    state.phone = phone;
    state.verification = { authReqId: answer.auth_req_id, nonce: answer.nonce, serverId: state.serverId };
    state.flowId = FLOW_ID.test(answer.flow_id || '') ? answer.flow_id : null;
    track('sms_sent', { ms: Math.round(performance.now() - started), resend });
    setBusy(button, null);
    enterCodeStep({ resend });
  } catch (err) {
    setBusy(button, null);
    if (!(err instanceof ApiError)) throw err;
    track('sms_failed', { ms: Math.round(performance.now() - started), resend, ...errorFields(err) });
    onSendError(err, phone, resend);
  }
}

function onSendError(err, phone, resend) {
  const button = resend ? el.resend : el.send;
  const waitOptions = { waitEl: resend ? el.resendWait : null, phone: phone.e164, limit: err.data && err.data.limit };
  const wait = (text) => {
    if (err.retryAfter > 0) startWait(button, err.retryAfter, waitOptions);
    setStatus(text, 'error');
  };
  const retryIn = err.retryAfter > 0 ? formatWait(err.retryAfter) : null;
  const later = retryIn ? `Try again in ${retryIn}.` : 'Try again later.';

  switch (err.code) {
    case 'invalid_phone_number':
    case 'country_not_allowed': {
      const text = err.code === 'invalid_phone_number'
        ? 'This number cannot receive a code: the service says it is not a valid phone number.'
        : `Numbers from ${countryName(phone.country || el.country.value)} can't be verified here.`;
      if (resend) show('phone', { focus: el.phone });
      fieldError(el.phone, el.phoneError, text);
      el.phone.focus();
      return;
    }
    case 'rate_limited': {
      const limit = err.data && err.data.limit;
      if (limit === 'resend_delay') {
        // A code went to this number moments ago. If it was from this page, it still works.
        const pending = state.verification && state.phone && state.phone.e164 === phone.e164;
        if (pending && !resend) {
          enterCodeStep({ resend: false, reused: true });
          const text = `A code was sent to this number a moment ago: enter it here. You can ask for a new one in ${retryIn || 'a moment'}.`;
          startWait(el.resend, err.retryAfter || 1, { waitEl: el.resendWait, phone: phone.e164, limit });
          setStatus(text);
          return;
        }
        wait(`A code was sent to this number a moment ago. You can ask for a new one in ${retryIn || 'a moment'}.`);
      } else if (limit === 'phone_window_sends' || limit === 'phone_daily_sends') {
        wait(`Too many codes were sent to this number. ${later}`);
      } else if (limit === 'ip_hourly_starts') {
        wait(`Too many verifications were started from your network. ${later}`);
      } else if (limit === 'client_daily_sends' || limit === 'country_hourly_sends' || limit === 'range_hourly_sends' || limit === 'country_paused') {
        wait(`The service is sending too many codes right now. ${later}`);
      } else if (limit === 'phone_failures' || limit === 'phone_daily_failures') {
        wait(`Too many wrong codes were entered for this number. ${later}`);
      } else {
        wait(`Too many requests. ${later}`);
      }
      return;
    }
    case 'challenge_failed':
      if (resend) show('phone', { focus: el.challengeField });
      setStatus('The check did not pass. Please complete it again, then send the code.', 'error');
      return;
    case 'verification_in_progress':
      wait(`A code was already sent to this number. You can ask for a new one in ${retryIn || 'a moment'}.`);
      return;
    default:
      wait(describeCommonError(err, 'The code could not be sent'));
  }
}

/** Messages for failures any call can have. */
function describeCommonError(err, what) {
  if (err.code === 'network_error' || err.code === 'network_timeout') {
    return `${what}: the verification service could not be reached. Check your connection and try again.`;
  }
  if (['upstream_error', 'upstream_timeout', 'service_unavailable'].includes(err.code) || err.status >= 500 || err.status === 429) {
    return `${what}: the service is busy or unavailable right now. Please try again in a moment.`;
  }
  if (['invalid_client', 'unknown_server', 'invalid_request', 'not_found', 'method_not_allowed'].includes(err.code) || err.status === 404) {
    return `${what}: this page is not set up correctly (${err.code}). Please tell the site's operator.`;
  }
  return `${what} (${err.code}). Please try again.`;
}

// ---------------------------------------------------------------------------------------------
// Step 2: the code

function enterCodeStep({ resend, reused = false }) {
  el.code.value = '';
  el.code.removeAttribute('aria-disabled');
  el.verify.removeAttribute('aria-disabled');
  fieldError(el.code, el.codeError, '');
  const number = document.createElement('span');
  number.className = 'nowrap';
  number.textContent = state.phone.display;
  el.codeSentTo.replaceChildren('We sent a code by SMS to ', number, '. It is valid for a few minutes.');
  if (resend) {
    // Still the code step: the focus goes back to the (emptied) code field.
    el.code.focus();
    setStatus('We sent a new code. The previous code no longer works.', 'success');
  } else {
    if (!reused) cancelWait(el.resend);
    show('code', { focus: el.code });
    setStatus(`Code sent to ${state.phone.display}.`, 'success');
  }
  startWebOtp();
}

// WebOTP: where the browser supports it (Chrome on Android), it offers the code of an SMS that
// ends with "@<this host> #<code>" and fills the field. The request is aborted when the user
// leaves the step or types and submits the code first.
let otpAbort = null;

function startWebOtp() {
  stopWebOtp();
  if (!('OTPCredential' in window) || !navigator.credentials || !navigator.credentials.get) return;
  otpAbort = new AbortController();
  navigator.credentials
    // WebOTP's `otp` option and OTPCredential are not in TypeScript's DOM types.
    .get(/** @type {any} */ ({ otp: { transport: ['sms'] }, signal: otpAbort.signal }))
    .then((/** @type {any} */ otp) => {
      if (!otp || !otp.code || state.step !== 'code' || state.busy) return;
      el.code.value = otp.code.replace(/\D/g, '');
      track('webotp_filled');
      el.codeForm.requestSubmit();
    })
    .catch(() => {
      // Aborted, refused or unsupported here: typing the code works the same.
    });
}

function stopWebOtp() {
  if (otpAbort) otpAbort.abort();
  otpAbort = null;
}

function onCodeInput() {
  // Digits only: a pasted "123 456" or "Code: 123456" becomes "123456".
  const digits = el.code.value.replace(/\D/g, '').slice(0, 10);
  if (digits !== el.code.value) el.code.value = digits;
  if (!el.codeError.hidden && /^\d{4,10}$/.test(digits)) fieldError(el.code, el.codeError, '');
}

async function onCodeSubmit(event) {
  event.preventDefault();
  if (state.busy) return;
  if (!state.verification) {
    setStatus('This code can no longer be used. Ask for a new code.', 'error');
    el.resend.focus();
    return;
  }
  const code = el.code.value.replace(/\D/g, '');
  if (!/^\d{4,10}$/.test(code)) {
    fieldError(el.code, el.codeError, 'Enter the code from the SMS: 4 to 10 digits.');
    el.code.focus();
    return;
  }
  stopWebOtp();
  fieldError(el.code, el.codeError, '');
  setBusy(el.verify, 'Checking…');
  clearStatus();
  track('code_submitted');
  const started = performance.now();
  const { authReqId, nonce, serverId } = state.verification;
  const body = { code, auth_req_id: authReqId, client_id: state.clientId, nonce };
  if (serverId) body.server_id = serverId;
  try {
    // 409 (another request is completing it) and upstream hiccups: the API asks for the same
    // request again and resumes where it stopped, so a few quiet retries spare the user.
    let answer;
    for (let attempt = 1; ; attempt += 1) {
      try {
        answer = await api.checkCode(body);
        break;
      } catch (err) {
        const retriable = ['verification_in_progress', 'upstream_error', 'upstream_timeout', 'service_unavailable'];
        if (!(err instanceof ApiError) || !retriable.includes(err.code) || attempt >= 3) throw err;
        track('code_retry', errorFields(err));
        setStatus('Still checking your code…');
        await new Promise((resolve) => setTimeout(resolve, Math.min(err.retryAfter || 1, 5) * 1000));
      }
    }
    track('verified', { ms: Math.round(performance.now() - started) });
    state.verification = null;
    state.session = typeof answer.session === 'string' ? answer.session : null;
    sessionStorage.setItem(VERIFIED_HINT, '1');
    setBusy(el.verify, null);
    await showUserInfo(answer);
  } catch (err) {
    setBusy(el.verify, null);
    if (!(err instanceof ApiError)) throw err;
    track('code_failed', { ms: Math.round(performance.now() - started), ...errorFields(err) });
    onCodeError(err);
  }
}

function endVerification(text) {
  // The verification is over: only a new code can help. The field stays for the next code.
  state.verification = null;
  el.verify.setAttribute('aria-disabled', 'true');
  fieldError(el.code, el.codeError, text);
  setStatus(text, 'error');
  el.resend.focus();
}

function onCodeError(err) {
  switch (err.code) {
    case 'invalid_code': {
      const left = err.data && Number.isInteger(err.data.attempts_left) ? err.data.attempts_left : null;
      if (left === 0) {
        endVerification('That code is not right, and no attempts are left. Ask for a new code.');
        return;
      }
      const text = left == null
        ? 'That code is not right. Check the SMS and try again.'
        : `That code is not right. ${plural(left, 'attempt')} left.`;
      fieldError(el.code, el.codeError, text);
      setStatus(text, 'error');
      el.code.select();
      el.code.focus();
      return;
    }
    case 'too_many_attempts':
      endVerification('Too many wrong codes: this code can no longer be used. Ask for a new code.');
      return;
    case 'verification_not_found':
      // Expired, already used, or replaced by a newer code: start again from the number.
      state.verification = null;
      show('phone', { focus: el.send });
      setStatus('This code has expired or was replaced by a newer one. Send a new code to start again.', 'error');
      return;
    case 'phone_not_verified':
      state.verification = null;
      show('phone', { focus: el.phone });
      setStatus('The phone operator did not confirm this number. Check the number and try again.', 'error');
      return;
    case 'rate_limited': {
      const later = err.retryAfter > 0 ? `Try again in ${formatWait(err.retryAfter)}.` : 'Try again later.';
      endVerification(`Too many wrong codes were entered for this number. ${later}`);
      return;
    }
    case 'invalid_request':
      fieldError(el.code, el.codeError, 'Enter the code from the SMS: 4 to 10 digits.');
      el.code.focus();
      return;
    default:
      setStatus(describeCommonError(err, 'The code could not be checked'), 'error');
      el.code.focus();
  }
}

function onResend() {
  if (isUnavailable(el.resend)) {
    if (waits.has(el.resend)) setStatus(`You can ask for a new code in ${waitLeft(el.resend)}.`, 'error');
    return;
  }
  if (!state.phone) {
    show('phone', { focus: el.phone });
    return;
  }
  sendCode(state.phone, { resend: true });
}

function onChangeNumber() {
  // The pending verification is kept: sending to the same number again within the resend delay
  // brings the user back here, where the code already sent still works.
  show('phone', { focus: el.phone });
  clearStatus();
}

// ---------------------------------------------------------------------------------------------
// Step 3: the verified session

/**
 * Shows the session from GET /user/info. `claims` is the /sms/token answer, the fallback for an
 * API that has no /user/info yet. With `quiet` (a reload), a missing session just returns false.
 */
async function showUserInfo(claims, { quiet = false } = {}) {
  let info = null;
  try {
    info = await api.userInfo(state.session);
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
    track('userinfo_failed', errorFields(err));
    if (quiet || !claims) {
      sessionStorage.removeItem(VERIFIED_HINT);
      if (!quiet) {
        show('phone');
        setStatus('Your session has ended. Verify your number again.', 'error');
      }
      return false;
    }
  }
  const userinfo = (info && info.userinfo) || claims || {};
  const phone = typeof userinfo.phone_number === 'string' ? userinfo.phone_number : '';
  const parsed = phone ? lpn.parsePhoneNumberFromString(phone) : null;
  el.info.phone.textContent = parsed ? parsed.formatInternational() : phone || 'unknown';
  if (info) {
    el.info.verified.textContent = formatTime(info.verified_at);
    el.info.expires.textContent = formatTime(info.expires_at);
    el.info.client.textContent = info.client_title || info.client_id || state.clientTitle || state.clientId;
    el.info.server.textContent = info.server_id || '';
  } else {
    el.info.verified.textContent = `${dateTime.format(new Date())} (this device's clock)`;
    el.info.expires.textContent = 'unknown';
    el.info.client.textContent = state.clientTitle || state.clientId;
    el.info.server.textContent = (claims.auth_server && claims.auth_server.id) || '';
  }
  show('done');
  setStatus(`Your phone number ${el.info.phone.textContent} is verified.`, 'success');
  return true;
}

async function onLogout() {
  if (state.busy) return;
  setBusy(el.logout, 'Logging out…');
  let warning = '';
  try {
    await api.logout(state.session);
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
    track('logout_failed', errorFields(err));
    // 401: the session had already ended, which is what the user wants.
    if (err.status !== 401) {
      warning = ` The service could not be told (${err.code}), so the session stays valid until it expires.`;
    }
  }
  setBusy(el.logout, null);
  track('logged_out');
  state.session = null;
  state.flowId = null;
  sessionStorage.removeItem(VERIFIED_HINT);
  el.code.value = '';
  show('phone');
  setStatus(`You are logged out.${warning}`, warning ? 'error' : 'info');
}

// ---------------------------------------------------------------------------------------------

el.phoneForm.addEventListener('submit', onPhoneSubmit);
el.phone.addEventListener('input', onPhoneInput);
el.phone.addEventListener('blur', onPhoneBlur);
el.send.addEventListener('pointerdown', () => {
  sendPressed = true;
});
el.country.addEventListener('change', () => {
  if (!el.phoneError.hidden) onPhoneBlur();
  onPhoneInput();
});
el.codeForm.addEventListener('submit', onCodeSubmit);
el.code.addEventListener('input', onCodeInput);
el.resend.addEventListener('click', onResend);
el.changeNumber.addEventListener('click', onChangeNumber);
el.logout.addEventListener('click', onLogout);

init().catch((err) => {
  // A bug, not an API answer: say so rather than leave the page loading forever.
  // An error code is a lowercase token: `TypeError` is logged as `type_error`.
  const name = String(err && err.name).replace(/([a-z])([A-Z])/g, '$1_$2').toLowerCase();
  track('page_error', { error: name });
  el.unavailableText.textContent = 'Something went wrong on this page. Please reload it.';
  show('unavailable');
  throw err;
});
