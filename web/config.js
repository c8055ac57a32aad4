// Settings of the demo page. This is the one file to edit when the page is deployed as static
// files somewhere else than local-api.
export default {
  // Where the API is. "" means the page's own origin: local-api serves this page and the API
  // together on http://127.0.0.1:3000. For a page hosted elsewhere, the API's base URL without a
  // trailing slash, e.g. "https://abcdef1234.execute-api.eu-west-1.amazonaws.com/staging"; then
  // also add that origin to `connect-src` in index.html's Content-Security-Policy, and this
  // page's origin to the stack's CorsAllowedOrigins parameter.
  apiBaseUrl: '',

  // The SMS client to use when the API does not list its clients (GET /sms/clients missing or
  // failing). When it does list them, this picks one of them; unknown ids fall back to the first.
  clientId: 'sandbox-client',

  // The country preselected for numbers typed without "+" (ISO 3166-1 alpha-2, e.g. "GB").
  // "" means the region of the browser's language (en-GB → GB), else the first allowed country.
  defaultCountry: '',
};
