// skylift console: the MN's /v1 API as the pages call it, and who is signed in.
// The token lives in sessionStorage: it survives the page reloading itself onto a new
// release's assets, and is gone with the tab (never in a cookie, never in the URL).
"use strict";

const SK = window.SK = {};

SK.TOKEN_KEY = "skylift-token";

SK.token = () => sessionStorage.getItem(SK.TOKEN_KEY) || "";
SK.setToken = (value) => sessionStorage.setItem(SK.TOKEN_KEY, value);
SK.forgetToken = () => sessionStorage.removeItem(SK.TOKEN_KEY);

// An answer of the API that is not a success: the MN's what / why / next, and the status.
class ApiError extends Error {
  constructor(status, body) {
    super(body.what || `HTTP ${status}`);
    this.status = status;
    this.what = body.what || `the management node answered HTTP ${status}`;
    this.why = body.why || "";
    this.next = body.next || "";
    this.kind = body.error || "";
  }
}
SK.ApiError = ApiError;

// The MN did not answer at all (restarting during an upgrade, or the network).
SK.unreachable = (err) => new ApiError(0, {
  what: "the management node does not answer",
  why: String(err && err.message || err),
  next: "the console retries by itself; during an upgrade the MN is back within seconds",
});

// Call the API with the signed-in token; JSON in and out; throws ApiError.
// Without a token it asks nothing: the MN counts every call without valid credentials
// against the caller's address, and a console polling without one would lock out every
// operator behind that address (429) within a minute.
SK.api = async (path, options = {}) => {
  if (!SK.token()) {
    const err = new ApiError(401, {
      what: "this console is signed out",
      why: "its token is gone (signed out, or this tab's storage was cleared)",
      next: "sign in again with the admin token or an account's token",
    });
    if (SK.onSignedOut) SK.onSignedOut(err);
    throw err;
  }
  const headers = Object.assign({ "Accept": "application/json" }, options.headers || {});
  headers["Authorization"] = "Bearer " + SK.token();
  const init = Object.assign({}, options, { headers, cache: "no-store" });
  if (options.json !== undefined) {
    init.method = init.method || "POST";
    init.body = JSON.stringify(options.json);
    headers["Content-Type"] = "application/json";
  }
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (err) {
    throw SK.unreachable(err);
  }
  const body = await resp.json().catch(() => ({}));
  if (!resp.ok) {
    const err = new ApiError(resp.status, body);
    if (resp.status === 401 && SK.onSignedOut) SK.onSignedOut(err);
    throw err;
  }
  return body;
};

// Open calls (no token): version, console assets.
SK.open = async (path) => {
  let resp;
  try {
    resp = await fetch(path, { cache: "no-store" });
  } catch (err) {
    throw SK.unreachable(err);
  }
  if (!resp.ok) throw new ApiError(resp.status, await resp.json().catch(() => ({})));
  return resp.json();
};

// Check a token with the MN before keeping it; answers who it belongs to.
SK.signIn = async (token) => {
  const resp = await fetch("/v1/session", {
    headers: { "Authorization": "Bearer " + token, "Accept": "application/json" },
    cache: "no-store",
  }).catch((err) => { throw SK.unreachable(err); });
  const body = await resp.json().catch(() => ({}));
  if (!resp.ok) throw new ApiError(resp.status, body);
  SK.setToken(token);
  return body;
};
