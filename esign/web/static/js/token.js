/*
 * "Ký bằng token / Sign with token": the officer's USB token through esign-agent.
 *
 * Loaded as a file (no inline script: the CSP forbids it). It wires every
 * element with a data-agent-url attribute, normally a <button type="button">
 * inside the document's sign form:
 *
 *   <button type="button" class="sign-token"
 *           data-agent-url="http://127.0.0.1:9796"
 *           data-request-url="/api/documents/12/signature-requests"
 *           data-complete-url="/api/signature-requests/{id}/complete"
 *           data-cancel-url="/api/signature-requests/{id}/cancel"      (optional)
 *           data-fingerprint="<sha256 of the officer's registered certificate, hex>"
 *           data-status="#token-status"                                (optional)
 *           data-done-url="/documents/12">Ký bằng token</button>       (optional; default: reload)
 *
 * What it assumes of the server (esign/web/api.py), all same-origin JSON with
 * the CSRF token from <meta name="csrf-token"> in the X-CSRFToken header:
 *
 *   POST data-request-url      body: the enclosing form's fields as a JSON object
 *                              (action, certificate_id, comment, idempotency_key, ...;
 *                              csrf_token left out), plus "device": "token"
 *                              -> 200 {id | request_id, tbs | tbs_b64, md_algorithm, mechanism}
 *   POST data-complete-url     ({id} replaced) body {"signature": "<base64>"}
 *                              -> 200 {status: "completed", ...}
 *   POST data-cancel-url       ({id} replaced) when the token fails after the request was made
 *   errors                     -> {error: code, message: sentence}
 *   401 {error: "reauth_required", reauth_url}: the password was typed too long ago;
 *                              the page goes to reauth_url, which comes back here
 *
 * and of esign-agent (esign/agent/server.py): GET /status, GET /certificates,
 * POST /sign {credential, tbs_b64, md_algorithm, mechanism, certificate_sha256}.
 *
 * For browser tests the button carries data-state (agent, request, signing,
 * completing, done, error) and, on error, data-error-code.
 */
(function () {
  "use strict";

  var EN = /^en\b/i.test(document.documentElement.lang || "");

  var TEXT = {
    agent: ["Đang kết nối esign-agent…", "Contacting the signing agent…"],
    request: ["Đang chuẩn bị văn bản để ký…", "Preparing the document for signing…"],
    signing: ["Đang ký bằng token…", "Signing with the token…"],
    completing: ["Đang hoàn tất chữ ký…", "Finishing the signature…"],
    done: ["Đã ký. Đang tải lại trang…", "Signed. Reloading…"],
    agent_down: [
      "Chưa chạy esign-agent. Hãy mở chương trình esign-agent trên máy tính rồi thử lại.",
      "The signing agent is not running. Start esign-agent on this computer and try again."
    ],
    not_yours: [
      "Chứng thư số trên token không phải của bạn. Hãy cắm đúng token đã đăng ký với esign.",
      "The certificate on the token is not the one registered for you. Plug in your registered token."
    ],
    no_fingerprint: [
      "Bạn chưa đăng ký chứng thư số token với esign. Liên hệ quản trị viên.",
      "No token certificate is registered for you in esign. Ask the administrator."
    ],
    token_unavailable: [
      "Chưa cắm token hoặc không đọc được token. Hãy cắm token rồi thử lại.",
      "The token is not plugged in or cannot be read. Plug it in and try again."
    ],
    wrong_pin: [
      "Mã PIN nhập vào esign-agent không đúng. Hãy khởi động lại esign-agent và nhập lại PIN (token sẽ bị khóa nếu nhập sai nhiều lần).",
      "The PIN typed into esign-agent is wrong. Restart esign-agent and type it again (the token locks after a few wrong tries)."
    ],
    pin_locked: [
      "Mã PIN của token đã bị khóa. Liên hệ quản trị viên hoặc nhà cung cấp chứng thư số để mở khóa.",
      "The token's PIN is locked. Ask the administrator or the certificate provider to unlock it."
    ],
    unknown_credential: [
      "Không tìm thấy khóa ký trên token.",
      "The signing key was not found on the token."
    ],
    certificate_refused: [
      "Chứng thư số trên token không phải của bạn.",
      "The certificate on the token is not the one registered for you."
    ],
    origin_refused: [
      "esign-agent chưa được cấu hình cho trang này (tham số --origin).",
      "esign-agent is not configured for this site (its --origin option)."
    ],
    reauth: [
      "Hãy xác nhận lại danh tính (nhập lại mật khẩu) trước khi ký.",
      "Confirm it is you (type your password again) before signing."
    ],
    server: ["Máy chủ esign từ chối: ", "The esign server refused: "],
    agent_refused: ["esign-agent từ chối: ", "esign-agent refused: "],
    bad_answer: [
      "Câu trả lời không hợp lệ. Hãy tải lại trang và thử lại.",
      "An answer could not be read. Reload the page and try again."
    ]
  };

  function t(key) {
    return TEXT[key][EN ? 1 : 0];
  }

  function normalise(fingerprint) {
    return String(fingerprint || "").replace(/[:\s]/g, "").toLowerCase();
  }

  function csrfToken(form) {
    var meta = document.querySelector('meta[name="csrf-token"]');
    if (meta && meta.content) return meta.content;
    var field = form && form.querySelector('input[name="csrf_token"]');
    return field ? field.value : "";
  }

  /** A failure with a code and a sentence for the officer (and, for reauth_required, where to go). */
  function Failure(code, message, url) {
    this.code = code;
    this.message = message;
    this.url = url || "";
  }

  function fromAgent(status, body) {
    var code = (body && body.error) || "agent_" + status;
    var message = TEXT[code] ? t(code) : t("agent_refused") + ((body && body.message) || status);
    return new Failure(code, message);
  }

  function readJson(response) {
    return response.text().then(function (text) {
      try {
        return text ? JSON.parse(text) : null;
      } catch (e) {
        return null;
      }
    });
  }

  function callAgent(base, path, init) {
    return fetch(base + path, Object.assign({ mode: "cors", credentials: "omit", cache: "no-store" }, init || {}))
      .catch(function () {
        // a network error: nothing listens on the port, or the browser blocked it
        throw new Failure("agent_down", t("agent_down"));
      })
      .then(function (response) {
        return readJson(response).then(function (body) {
          if (!response.ok) throw fromAgent(response.status, body);
          if (!body) throw new Failure("bad_answer", t("bad_answer"));
          return body;
        });
      });
  }

  function callServer(url, payload, form) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: {
        "Content-Type": "application/json",
        Accept: "application/json",
        "X-CSRFToken": csrfToken(form)
      },
      body: JSON.stringify(payload)
    }).then(function (response) {
      return readJson(response).then(function (body) {
        if (!response.ok) {
          if (body && body.error === "reauth_required") {
            throw new Failure("reauth_required", body.message || t("reauth"), body.reauth_url);
          }
          throw new Failure((body && body.error) || "server_" + response.status,
            t("server") + ((body && body.message) || response.status));
        }
        if (!body) throw new Failure("bad_answer", t("bad_answer"));
        return body;
      });
    });
  }

  function formFields(form) {
    var out = {};
    if (!form) return out;
    new FormData(form).forEach(function (value, name) {
      if (name === "csrf_token" || typeof value !== "string") return;
      if (Object.prototype.hasOwnProperty.call(out, name)) {
        out[name] = [].concat(out[name], value); // repeated fields (advisers)
      } else {
        out[name] = value;
      }
    });
    return out;
  }

  function statusElement(button) {
    var selector = button.getAttribute("data-status");
    var el = selector ? document.querySelector(selector) : null;
    if (!el) {
      el = document.createElement("p");
      el.className = "token-status";
      el.id = "token-status-" + Math.random().toString(36).slice(2);
      button.insertAdjacentElement("afterend", el);
      button.setAttribute("data-status", "#" + el.id);
    }
    el.setAttribute("role", "status");
    el.setAttribute("aria-live", "polite");
    el.setAttribute("lang", EN ? "en" : "vi");
    return el;
  }

  function sign(button) {
    var agentUrl = button.getAttribute("data-agent-url").replace(/\/+$/, "");
    var requestUrl = button.getAttribute("data-request-url");
    var completeUrl = button.getAttribute("data-complete-url");
    var cancelUrl = button.getAttribute("data-cancel-url");
    var doneUrl = button.getAttribute("data-done-url");
    var wanted = normalise(button.getAttribute("data-fingerprint"));
    var form = button.form || button.closest("form");
    var status = statusElement(button);
    var requestId = null;

    function stage(name) {
      button.setAttribute("data-state", name);
      status.classList.remove("error");
      status.textContent = t(name);
    }

    button.disabled = true;
    button.removeAttribute("data-error-code");
    stage("agent");
    var credential;

    Promise.resolve()
      .then(function () {
        if (!wanted) throw new Failure("no_fingerprint", t("no_fingerprint"));
        return callAgent(agentUrl, "/status");
      })
      .then(function (agentStatus) {
        // learn what the agent already knows before the server prepares anything
        if (agentStatus.token_present === false) throw new Failure("token_unavailable", t("token_unavailable"));
        if (agentStatus.pin === "wrong") throw new Failure("wrong_pin", t("wrong_pin"));
        if (agentStatus.pin === "locked") throw new Failure("pin_locked", t("pin_locked"));
        return callAgent(agentUrl, "/certificates");
      })
      .then(function (listing) {
        var match = (listing.certificates || []).filter(function (c) {
          return normalise(c.sha256) === wanted;
        })[0];
        if (!match) throw new Failure("not_yours", t("not_yours"));
        credential = match.label;
        stage("request");
        var payload = formFields(form);
        payload.device = "token";
        return callServer(requestUrl, payload, form);
      })
      .then(function (prepared) {
        requestId = prepared.request_id || prepared.id;
        var tbs = prepared.tbs_b64 || prepared.tbs;
        if (!requestId || !tbs) throw new Failure("bad_answer", t("bad_answer"));
        stage("signing");
        return callAgent(agentUrl, "/sign", {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({
            credential: credential,
            tbs_b64: tbs,
            md_algorithm: prepared.md_algorithm || "sha256",
            mechanism: prepared.mechanism || "rsassa_pkcs1v15",
            certificate_sha256: wanted
          })
        });
      })
      .then(function (signed) {
        stage("completing");
        var url = completeUrl.replace("{id}", encodeURIComponent(requestId));
        return callServer(url, { signature: signed.signature_b64 }, form);
      })
      .then(function () {
        requestId = null;
        stage("done");
        if (doneUrl) {
          window.location.assign(doneUrl);
        } else {
          window.location.reload();
        }
      })
      .catch(function (error) {
        var failure = error instanceof Failure ? error : new Failure("error", String(error && error.message || error));
        button.setAttribute("data-state", "error");
        button.setAttribute("data-error-code", failure.code);
        status.classList.add("error");
        status.textContent = failure.message;
        if (failure.code === "reauth_required" && failure.url) {
          // nothing was prepared: confirm on the re-authentication page, which brings the officer back here
          window.location.assign(failure.url);
          return;
        }
        button.disabled = false;
        if (requestId && cancelUrl) {
          // best effort: the prepared request would expire anyway
          callServer(cancelUrl.replace("{id}", encodeURIComponent(requestId)), {}, form).catch(function () {});
        }
      });
  }

  function wire(root) {
    var buttons = root.querySelectorAll("[data-agent-url]");
    Array.prototype.forEach.call(buttons, function (button) {
      if (button.getAttribute("data-token-wired")) return;
      button.setAttribute("data-token-wired", "1");
      button.addEventListener("click", function (event) {
        event.preventDefault();
        if (!button.disabled) sign(button);
      });
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { wire(document); });
  } else {
    wire(document);
  }
})();
