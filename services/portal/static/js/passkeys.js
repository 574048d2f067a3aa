// Passkeys (WebAuthn): add one on the account page, use one as the second step, or sign in
// with one. Forms marked data-passkey="register|verify|signin" run the ceremony:
//   1. POST {} (JSON) to data-passkey-options -> {publicKey: options}; the server keeps the
//      challenge in a short-lived HttpOnly cookie,
//   2. navigator.credentials.create() / .get(),
//   3. POST the result (JSON) to the form's action -> {redirect} or {error}.
// Both POSTs carry the form's CSRF token in the X-CSRF-Token header.
// Without WebAuthn (or JavaScript) the passkey buttons stay hidden.
(function () {
  "use strict";

  var supported =
    typeof window.PublicKeyCredential === "function" &&
    !!navigator.credentials &&
    typeof navigator.credentials.create === "function";

  // ---- base64url <-> ArrayBuffer ----------------------------------------------------------

  function toBuffer(value) {
    var b64 = value.replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) {
      b64 += "=";
    }
    var binary = window.atob(b64);
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) {
      bytes[i] = binary.charCodeAt(i);
    }
    return bytes.buffer;
  }

  function toBase64url(buffer) {
    var bytes = new Uint8Array(buffer);
    var binary = "";
    for (var i = 0; i < bytes.length; i++) {
      binary += String.fromCharCode(bytes[i]);
    }
    return window.btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function descriptors(list) {
    return (list || []).map(function (d) {
      var out = { type: d.type, id: toBuffer(d.id) };
      if (d.transports) {
        out.transports = d.transports;
      }
      return out;
    });
  }

  function creationOptions(json) {
    var o = Object.assign({}, json);
    o.challenge = toBuffer(json.challenge);
    o.user = Object.assign({}, json.user, { id: toBuffer(json.user.id) });
    o.excludeCredentials = descriptors(json.excludeCredentials);
    return o;
  }

  function requestOptions(json) {
    var o = Object.assign({}, json);
    o.challenge = toBuffer(json.challenge);
    o.allowCredentials = descriptors(json.allowCredentials);
    return o;
  }

  function extensions(credential) {
    try {
      return credential.getClientExtensionResults() || {};
    } catch (e) {
      return {};
    }
  }

  function registrationJSON(credential) {
    var r = credential.response;
    return {
      id: credential.id,
      rawId: toBase64url(credential.rawId),
      type: credential.type,
      authenticatorAttachment: credential.authenticatorAttachment || undefined,
      clientExtensionResults: extensions(credential),
      response: {
        clientDataJSON: toBase64url(r.clientDataJSON),
        attestationObject: toBase64url(r.attestationObject),
        transports: typeof r.getTransports === "function" ? r.getTransports() : [],
      },
    };
  }

  function assertionJSON(credential) {
    var r = credential.response;
    return {
      id: credential.id,
      rawId: toBase64url(credential.rawId),
      type: credential.type,
      authenticatorAttachment: credential.authenticatorAttachment || undefined,
      clientExtensionResults: extensions(credential),
      response: {
        clientDataJSON: toBase64url(r.clientDataJSON),
        authenticatorData: toBase64url(r.authenticatorData),
        signature: toBase64url(r.signature),
        userHandle: r.userHandle ? toBase64url(r.userHandle) : undefined,
      },
    };
  }

  // ---- talking to the portal ----------------------------------------------------------------

  function field(form, name) {
    var input = form.querySelector('[name="' + name + '"]');
    return input ? input.value : "";
  }

  function post(url, form, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: {
        "Content-Type": "application/json",
        Accept: "application/json",
        "X-CSRF-Token": field(form, "csrf_token"),
      },
      body: JSON.stringify(body || {}),
    }).then(function (response) {
      return response
        .json()
        .catch(function () {
          return {};
        })
        .then(function (data) {
          if (response.status === 403 && !data.error) {
            data.error = "This page has expired. Reload it and try again.";
          }
          return { ok: response.ok, data: data };
        });
    });
  }

  function go(url) {
    var target = new URL(url, window.location.href);
    var here = new URL(window.location.href);
    if (target.pathname === here.pathname && target.search === here.search) {
      // Only the fragment differs: assigning would not load the page again.
      window.history.replaceState(null, "", target.href);
      window.location.reload();
    } else {
      window.location.assign(target.href);
    }
  }

  function showError(form, message) {
    var slot = form.querySelector("[data-passkey-error]");
    var text = form.querySelector("[data-passkey-message]");
    if (slot && text) {
      text.textContent = message;
      slot.hidden = false;
    }
  }

  function clearError(form) {
    var slot = form.querySelector("[data-passkey-error]");
    if (slot) {
      slot.hidden = true;
    }
  }

  function browserError(error, kind) {
    var name = error && error.name;
    if (name === "InvalidStateError" && kind === "register") {
      return "This device already has a passkey for your account.";
    }
    if (name === "NotAllowedError" || name === "AbortError") {
      return "The passkey request was cancelled or timed out. Try again when you are ready.";
    }
    if (name === "SecurityError") {
      return "Passkeys cannot be used at this address.";
    }
    return "Your browser could not use a passkey here.";
  }

  function ceremony(form, kind) {
    if (kind === "register" && !field(form, "name").trim()) {
      showError(form, "Give the passkey a name you will recognise.");
      var name = form.querySelector('[name="name"]');
      if (name) {
        name.focus();
      }
      return Promise.resolve();
    }
    return post(form.dataset.passkeyOptions, form).then(function (answer) {
      if (!answer.ok || !answer.data.publicKey) {
        if (answer.data.redirect) {
          go(answer.data.redirect);
        }
        showError(form, answer.data.error || "Passkeys are not available right now.");
        return;
      }
      var options = answer.data.publicKey;
      var ask =
        kind === "register"
          ? navigator.credentials.create({ publicKey: creationOptions(options) })
          : navigator.credentials.get({ publicKey: requestOptions(options) });
      return ask.then(
        function (credential) {
          var body = {
            credential:
              kind === "register" ? registrationJSON(credential) : assertionJSON(credential),
          };
          if (kind === "register") {
            body.name = field(form, "name");
          } else {
            body.next = field(form, "next");
          }
          return post(form.action, form, body).then(function (result) {
            if (result.data.redirect) {
              go(result.data.redirect);
              return;
            }
            showError(form, result.data.error || "The passkey could not be verified.");
          });
        },
        function (error) {
          showError(form, browserError(error, kind));
        }
      );
    });
  }

  // ---- wiring -------------------------------------------------------------------------------

  // Deferred: the document is parsed when this runs.
  document.querySelectorAll("[data-passkey-supported]").forEach(function (el) {
    el.hidden = !supported;
  });
  document.querySelectorAll("[data-passkey-unsupported]").forEach(function (el) {
    el.hidden = supported;
  });

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.dataset.passkey) {
      return;
    }
    event.preventDefault();
    if (!supported || form.getAttribute("aria-busy") === "true") {
      return;
    }
    var buttons = form.querySelectorAll("button");
    form.setAttribute("aria-busy", "true");
    buttons.forEach(function (b) {
      b.disabled = true;
    });
    clearError(form);
    ceremony(form, form.dataset.passkey)
      .catch(function () {
        showError(form, "Something went wrong. Reload the page and try again.");
      })
      .then(function () {
        form.setAttribute("aria-busy", "false");
        buttons.forEach(function (b) {
          b.disabled = false;
        });
      });
  });
})();
