// The hub's JSON API. The session cookie is HttpOnly, so the browser sends it by itself;
// state-changing requests carry the CSRF token the hub handed out with the session.

let csrf = null;

export function setCsrf(token) { csrf = token || null; }

/** An API failure with the HTTP status and the hub's own words. */
export class ApiError extends Error {
  constructor(status, message, retryAfter) {
    super(message);
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

async function errorOf(resp) {
  let message = `${resp.status} ${resp.statusText}`.trim();
  try {
    const text = await resp.text();
    try {
      const body = JSON.parse(text);
      if (body && typeof body.error === 'string') message = body.error;
      else if (body && typeof body.message === 'string') message = body.message;
    } catch (_) {
      if (text && text.length < 500) message = text;
    }
  } catch (_) { /* keep the status line */ }
  if (resp.status === 404 && message.startsWith('404')) {
    message = 'this hub does not offer that yet (404)';
  }
  const ra = resp.headers.get('Retry-After');
  return new ApiError(resp.status, message, ra ? parseInt(ra, 10) : null);
}

async function request(method, url, body, opts = {}) {
  const headers = { 'Accept': opts.text ? 'text/plain' : 'application/json' };
  if (method !== 'GET') {
    headers['Content-Type'] = 'application/json';
    if (csrf) headers['X-CSRF-Token'] = csrf;
  }
  let resp;
  try {
    resp = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store',
      signal: opts.signal,
    });
  } catch (e) {
    if (e && e.name === 'AbortError') throw e;
    throw new ApiError(0, 'cannot reach the hub (network error); retrying may help');
  }
  if (!resp.ok) {
    const err = await errorOf(resp);
    if (resp.status === 401 && !opts.allow401) {
      window.dispatchEvent(new CustomEvent('steward:unauthenticated', { detail: err.message }));
    }
    throw err;
  }
  if (opts.text) return resp;
  const ct = resp.headers.get('Content-Type') || '';
  return ct.includes('json') ? resp.json() : {};
}

export const api = {
  get: (url, opts) => request('GET', url, undefined, opts),
  post: (url, body, opts) => request('POST', url, body === undefined ? {} : body, opts),
  /** Raw response (for logs: text plus X-Log-* headers). */
  raw: (url, opts) => request('GET', url, undefined, { ...opts, text: true }),
};

/** `?a=1&b=2`, leaving out empty values. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === '') continue;
    q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}
