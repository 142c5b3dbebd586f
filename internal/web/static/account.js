// The passkey buttons of the hosted account pages, the only part of them
// that needs JavaScript. A button's container says what it does
// (data-passkey: login, factor or enrol), carries the form's CSRF token
// and flow, and is hidden until this script finds WebAuthn. Each ceremony
// asks a page endpoint for options, runs navigator.credentials, sends the
// answer back and follows the redirect the page answers with; the
// browser's session is the page's HttpOnly cookie, never a token here.
// Outcomes go to #status (data-state: busy, ok, error) for people and
// tests alike.
"use strict";

(() => {
  const box = document.querySelector("[data-passkey]");
  if (!box || !window.PublicKeyCredential || !navigator.credentials) {
    return;
  }
  box.hidden = false;
  const button = document.getElementById("passkey-button");
  const status = document.getElementById("status");
  const kind = box.dataset.passkey;

  function show(state, text) {
    status.dataset.state = state;
    status.textContent = text;
  }

  async function post(path, body) {
    const res = await fetch(path, {
      method: "POST",
      headers: {
        "Content-Type": "application/json",
        Accept: "application/json",
        "X-CSRF-Token": box.dataset.csrf,
        "X-CSRF-Flow": box.dataset.flow || "",
      },
      body: JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
    });
    const data = await res.json().catch(() => null);
    if (!res.ok || !data) {
      throw new Error((data && data.error) || "HTTP " + res.status);
    }
    return data;
  }

  function fromB64url(s) {
    const b64 = s.replace(/-/g, "+").replace(/_/g, "/");
    const bin = atob(b64 + "===".slice((b64.length + 3) % 4));
    return Uint8Array.from(bin, (c) => c.charCodeAt(0)).buffer;
  }

  function toB64url(buf) {
    const bytes = new Uint8Array(buf instanceof ArrayBuffer ? buf : buf.buffer);
    let bin = "";
    for (const b of bytes) {
      bin += String.fromCharCode(b);
    }
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  const clean = (o) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== null));
  const descriptors = (list) => (list || []).map((c) => ({ ...clean(c), id: fromB64url(c.id) }));

  function options(answer) {
    let o = answer.publicKey;
    if (o && o.publicKey && !o.challenge) {
      o = o.publicKey;
    }
    const pk = clean(o);
    pk.challenge = fromB64url(o.challenge);
    if (o.user) {
      pk.user = { ...clean(o.user), id: fromB64url(o.user.id) };
    }
    if (o.excludeCredentials) {
      pk.excludeCredentials = descriptors(o.excludeCredentials);
    }
    if (o.allowCredentials) {
      pk.allowCredentials = descriptors(o.allowCredentials);
    }
    return pk;
  }

  function credentialJSON(c) {
    if (typeof c.toJSON === "function") {
      return c.toJSON();
    }
    const r = c.response;
    const response = { clientDataJSON: toB64url(r.clientDataJSON) };
    if (r.attestationObject) {
      response.attestationObject = toB64url(r.attestationObject);
      response.transports = typeof r.getTransports === "function" ? r.getTransports() : [];
    } else {
      response.authenticatorData = toB64url(r.authenticatorData);
      response.signature = toB64url(r.signature);
      if (r.userHandle) {
        response.userHandle = toB64url(r.userHandle);
      }
    }
    return {
      id: c.id,
      rawId: toB64url(c.rawId),
      type: c.type,
      authenticatorAttachment: c.authenticatorAttachment || null,
      clientExtensionResults: c.getClientExtensionResults ? c.getClientExtensionResults() : {},
      response,
    };
  }

  const ceremonies = {
    async login() {
      const begun = await post("/account/passkeys/login/begin", {});
      const cred = await navigator.credentials.get({ publicKey: options(begun) });
      return post("/account/passkeys/login/finish", {
        processingId: begun.processingId,
        credential: credentialJSON(cred),
        returnTo: box.dataset.returnTo || "",
      });
    },
    async factor() {
      const begun = await post("/account/passkeys/factor/begin", { processingId: box.dataset.flow });
      const cred = await navigator.credentials.get({ publicKey: options(begun) });
      return post("/account/passkeys/factor/finish", {
        processingId: box.dataset.flow,
        credential: credentialJSON(cred),
        returnTo: box.dataset.returnTo || "",
        next: box.dataset.next || "",
      });
    },
    async enrol() {
      const begun = await post("/account/settings/passkeys/begin", {});
      if (begun.redirect) {
        return begun; // a step-up first
      }
      const cred = await navigator.credentials.create({ publicKey: options(begun) });
      return post("/account/settings/passkeys/finish", {
        processingId: begun.processingId,
        credential: credentialJSON(cred),
        name: "",
      });
    },
  };

  // Recovery codes (the first passkey turned MFA on) are shown once, by
  // the page that shows codes: a form posts them there.
  function showCodes(codes) {
    const form = document.createElement("form");
    form.method = "post";
    form.action = "/account/settings/recovery-codes/show";
    const add = (name, value) => {
      const input = document.createElement("input");
      input.type = "hidden";
      input.name = name;
      input.value = value;
      form.append(input);
    };
    add("csrf", box.dataset.csrf);
    codes.forEach((c) => add("code", c));
    document.body.append(form);
    form.submit();
  }

  button.addEventListener("click", async () => {
    button.disabled = true;
    show("busy", "…");
    try {
      const done = await ceremonies[kind]();
      show("ok", "✓");
      if (done.recoveryCodes) {
        showCodes(done.recoveryCodes);
        return;
      }
      window.location.assign(done.redirect);
    } catch (e) {
      show("error", e && e.message ? e.message : String(e));
      button.disabled = false;
    }
  });
})();
