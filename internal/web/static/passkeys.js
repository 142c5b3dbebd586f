// The passkey page of Tessera (/ui/passkeys): sign in with a password, add
// a passkey, sign in with a passkey. Every step writes its outcome into
// #status, with data-step (login, add-passkey, passkey-login), data-state
// (busy, ok, error) and, after an API error, data-code, so that a person
// reads it and a test waits for it. The ID token stays in this script's
// memory: never in web storage or a cookie.
"use strict";

(() => {
  let idToken = null;
  let busy = false;

  const $ = (id) => document.getElementById(id);
  const status = $("status");
  const buttons = ["login", "add-passkey", "passkey-login"].map($);

  function show(step, state, text, code) {
    status.dataset.step = step;
    status.dataset.state = state;
    if (code) {
      status.dataset.code = code;
    } else {
      delete status.dataset.code;
    }
    status.textContent = text;
  }

  // An answer of the API that is not a 2xx: its JSON body is
  // {"status", "error", "code"}.
  class APIError extends Error {
    constructor(httpStatus, body) {
      const code = (body && body.code) || "";
      const message = (body && body.error) || "";
      super(`${httpStatus}${code ? " " + code : ""}${message ? ": " + message : ""}`);
      this.name = "APIError";
      this.status = httpStatus;
      this.code = code;
    }
  }

  async function post(path, body, token) {
    const headers = { "Content-Type": "application/json", Accept: "application/json" };
    if (token) {
      headers.Authorization = "Bearer " + token;
    }
    const res = await fetch(path, {
      method: "POST",
      headers,
      body: JSON.stringify(body),
      credentials: "omit",
      cache: "no-store",
    });
    const text = await res.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch (e) {
      data = null;
    }
    if (!res.ok) {
      throw new APIError(res.status, data);
    }
    if (data === null || typeof data !== "object") {
      throw new Error(`${path} answered ${res.status} without a JSON object`);
    }
    return data;
  }

  // base64url (padded or not; standard base64 also decodes) to ArrayBuffer.
  function fromB64url(s) {
    if (typeof s !== "string") {
      throw new TypeError("expected a base64url string");
    }
    const b64 = s.replace(/-/g, "+").replace(/_/g, "/").replace(/=+$/, "");
    const bin = atob(b64 + "===".slice((b64.length + 3) % 4));
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) {
      out[i] = bin.charCodeAt(i);
    }
    return out.buffer;
  }

  // ArrayBuffer or view to base64url without padding.
  function toB64url(buf) {
    const bytes = buf instanceof ArrayBuffer ? new Uint8Array(buf) : new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
    let bin = "";
    for (const b of bytes) {
      bin += String.fromCharCode(b);
    }
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  // The options of a begin answer. Some servers pass on the whole
  // CredentialCreation / CredentialAssertion, which nests them once more.
  function optionsOf(answer) {
    const o = answer && answer.publicKey;
    if (!o || typeof o !== "object") {
      throw new Error("the answer has no publicKey options");
    }
    return o.publicKey && typeof o.publicKey === "object" && !o.challenge ? o.publicKey : o;
  }

  // Drops the members that are null: WebAuthn's dictionaries want them
  // absent.
  function withoutNulls(o) {
    const out = {};
    for (const [k, v] of Object.entries(o)) {
      if (v !== null) {
        out[k] = v;
      }
    }
    return out;
  }

  const descriptors = (list) => (list || []).map((c) => ({ ...withoutNulls(c), id: fromB64url(c.id) }));

  function creationOptions(o) {
    const pk = withoutNulls(o);
    pk.challenge = fromB64url(o.challenge);
    pk.user = { ...withoutNulls(o.user), id: fromB64url(o.user.id) };
    if (o.excludeCredentials) {
      pk.excludeCredentials = descriptors(o.excludeCredentials);
    }
    return pk;
  }

  function requestOptions(o) {
    const pk = withoutNulls(o);
    pk.challenge = fromB64url(o.challenge);
    if (o.allowCredentials) {
      pk.allowCredentials = descriptors(o.allowCredentials);
    }
    return pk;
  }

  // The PublicKeyCredential as the JSON a server reads (WebAuthn Level 3's
  // toJSON, or the same built by hand where the browser lacks it).
  function credentialJSON(c) {
    if (typeof c.toJSON === "function") {
      return c.toJSON();
    }
    const r = c.response;
    const out = {
      id: c.id,
      rawId: toB64url(c.rawId),
      type: c.type,
      authenticatorAttachment: c.authenticatorAttachment || null,
      clientExtensionResults: typeof c.getClientExtensionResults === "function" ? c.getClientExtensionResults() : {},
      response: { clientDataJSON: toB64url(r.clientDataJSON) },
    };
    if (r.attestationObject) {
      out.response.attestationObject = toB64url(r.attestationObject);
      out.response.transports = typeof r.getTransports === "function" ? r.getTransports() : [];
    } else {
      out.response.authenticatorData = toB64url(r.authenticatorData);
      out.response.signature = toB64url(r.signature);
      out.response.userHandle = r.userHandle ? toB64url(r.userHandle) : null;
    }
    return out;
  }

  // The claims of a JWT, read without checking it: only to show them.
  function claims(token) {
    const part = String(token).split(".")[1] || "";
    return JSON.parse(new TextDecoder().decode(fromB64url(part)));
  }

  function describe(token) {
    try {
      const c = claims(token);
      const amr = Array.isArray(c.amr) ? c.amr.join(",") : "";
      return `acr=${c.acr || "?"} amr=${amr || "?"}`;
    } catch (e) {
      return "(the ID token cannot be read)";
    }
  }

  // run runs one step: one at a time, with the buttons off meanwhile, and
  // its error (API, WebAuthn or network) written into #status.
  async function run(step, label, f) {
    if (busy) {
      return;
    }
    busy = true;
    buttons.forEach((b) => (b.disabled = true));
    show(step, "busy", label + "…");
    try {
      await f();
    } catch (e) {
      const what = e instanceof APIError ? e.message : `${e.name || "Error"}: ${e.message || e}`;
      show(step, "error", `${label} failed: ${what}`, e instanceof APIError ? e.code : e.name);
    } finally {
      busy = false;
      buttons.forEach((b) => (b.disabled = false));
    }
  }

  function login(event) {
    event.preventDefault();
    const email = $("email").value;
    const password = $("password").value;
    run("login", "Signing in", async () => {
      const answer = await post("/auth/login", { email, password });
      $("password").value = "";
      if (answer.mfaRequired) {
        idToken = null;
        show("login", "error", "MFA on: not supported on this page", "mfa_required");
        return;
      }
      if (!answer.idToken) {
        throw new Error("the answer has no idToken");
      }
      idToken = answer.idToken;
      show("login", "ok", `Signed in with a password: ${describe(idToken)}`);
    });
  }

  function addPasskey() {
    run("add-passkey", "Adding a passkey", async () => {
      if (!idToken) {
        show("add-passkey", "error", "Sign in first, then add a passkey.", "not_signed_in");
        return;
      }
      const begin = await post("/auth/passkeys/registration/begin", {}, idToken);
      const credential = await navigator.credentials.create({ publicKey: creationOptions(optionsOf(begin)) });
      if (!credential) {
        throw new Error("the browser made no credential");
      }
      await post(
        "/auth/passkeys/registration/finish",
        { processingId: begin.processingId, name: "This browser", credential: credentialJSON(credential) },
        idToken,
      );
      show("add-passkey", "ok", "Passkey added: This browser");
    });
  }

  function passkeyLogin() {
    run("passkey-login", "Signing in with a passkey", async () => {
      const begin = await post("/auth/passkeys/login/begin", {});
      const credential = await navigator.credentials.get({ publicKey: requestOptions(optionsOf(begin)) });
      if (!credential) {
        throw new Error("the browser returned no passkey");
      }
      const answer = await post("/auth/passkeys/login/finish", {
        processingId: begin.processingId,
        credential: credentialJSON(credential),
      });
      if (!answer.idToken) {
        throw new Error("the answer has no idToken");
      }
      idToken = answer.idToken;
      show("passkey-login", "ok", `Signed in with a passkey: ${describe(idToken)}`);
    });
  }

  $("login-form").addEventListener("submit", login);
  $("add-passkey").addEventListener("click", addPasskey);
  $("passkey-login").addEventListener("click", passkeyLogin);
  if (!window.PublicKeyCredential || !navigator.credentials) {
    $("add-passkey").hidden = true;
    $("passkey-login").hidden = true;
    show("load", "error", "This browser does not support passkeys (or the page is not on https or localhost).", "unsupported");
  } else {
    show("load", "ok", "Not signed in.");
  }
})();
