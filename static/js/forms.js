// Every form of every page: (1) a refused form lists all its errors in a summary that takes
// the focus, each error tied to its field (aria-invalid, aria-describedby); (2) what was typed
// survives a session that expired: the form is kept in this tab's sessionStorage when it is
// sent, and given back after the next login, with « Votre session a expiré ». The draft never
// leaves the browser, holds no password, file or hidden field, and is dropped at logout, as
// soon as a page shows that the sending went through, and after two hours.
(function () {
  "use strict";
  var KEY = "telmi.draft", MAX_AGE = 2 * 3600 * 1000;
  var store = window.sessionStorage;

  function control(form, name) {
    var scope = form || document;
    var found = scope.querySelector('[name="' + CSS.escape(name) + '"]');
    if (!found) found = document.getElementById(name);
    if (!found && name.indexOf(".") > 0) {
      found = scope.querySelector('[name="' + CSS.escape(name.split(".").pop()) + '"]');
    }
    return found;
  }

  function describe(field, id) {
    var ids = (field.getAttribute("aria-describedby") || "").split(/\s+/).filter(Boolean);
    if (ids.indexOf(id) < 0) ids.push(id);
    field.setAttribute("aria-describedby", ids.join(" "));
    field.setAttribute("aria-invalid", "true");
  }

  function tieErrors() {
    var summary = document.querySelector("[data-error-summary]");
    if (!summary) return;
    var form = summary.closest("form") || summary.parentElement.querySelector("form") ||
      document.querySelector("main form[method=post]");
    summary.querySelectorAll("[data-field]").forEach(function (link, n) {
      var field = control(form, link.dataset.field);
      if (!field || field.type === "hidden") {
        link.removeAttribute("href");
        return;
      }
      if (!field.id) field.id = "champ-" + link.dataset.field.replace(/[^A-Za-z0-9_-]/g, "-");
      link.setAttribute("href", "#" + field.id);
      link.addEventListener("click", function (e) { e.preventDefault(); field.focus(); });
      if (field.getAttribute("aria-invalid") === "true" && field.getAttribute("aria-describedby")) {
        return; // the page already tied this one
      }
      var note = document.createElement("p");
      note.className = "field-error";
      note.id = field.id + "-erreur-" + n;
      note.textContent = link.textContent;
      var anchor = field.closest("label") || field;
      anchor.insertAdjacentElement("afterend", note);
      describe(field, note.id);
    });
    summary.focus();
  }

  function fields(form) {
    var kept = [];
    Array.prototype.forEach.call(form.elements, function (el) {
      if (!el.name || el.disabled || el.name === "csrf_token") return;
      var type = (el.type || "").toLowerCase();
      if (["password", "file", "hidden", "submit", "button", "reset"].indexOf(type) >= 0) return;
      if ((type === "checkbox" || type === "radio") && !el.checked) return;
      if (el.tagName === "SELECT" && el.multiple) {
        Array.prototype.forEach.call(el.selectedOptions, function (o) { kept.push([el.name, o.value]); });
        return;
      }
      kept.push([el.name, el.value]);
    });
    return kept;
  }

  function keep(form) {
    if ((form.method || "").toLowerCase() !== "post" || form.hasAttribute("data-no-draft")) return;
    var draft = {
      page: location.pathname, action: form.getAttribute("action") || "",
      fields: fields(form), at: Date.now(), expired: false,
    };
    try { store.setItem(KEY, JSON.stringify(draft)); } catch (e) { /* storage full or off */ }
  }

  function read() {
    try { return JSON.parse(store.getItem(KEY) || "null"); } catch (e) { return null; }
  }

  function restore(draft) {
    var forms = document.querySelectorAll("form[method=post]");
    var form = Array.prototype.find.call(forms, function (f) {
      return (f.getAttribute("action") || "") === draft.action;
    });
    if (!form) return false;
    var values = {};
    draft.fields.forEach(function (pair) { (values[pair[0]] = values[pair[0]] || []).push(pair[1]); });
    Array.prototype.forEach.call(form.elements, function (el) {
      if (!el.name || !(el.name in values)) {
        if ((el.type === "checkbox" || el.type === "radio") && el.name) el.checked = false;
        return;
      }
      var type = (el.type || "").toLowerCase();
      if (type === "checkbox" || type === "radio") el.checked = values[el.name].indexOf(el.value) >= 0;
      else if (el.tagName === "SELECT" && el.multiple) {
        Array.prototype.forEach.call(el.options, function (o) { o.selected = values[el.name].indexOf(o.value) >= 0; });
      } else if (["password", "file", "hidden"].indexOf(type) < 0) el.value = values[el.name].shift();
    });
    var note = document.createElement("p");
    note.className = "warning";
    note.setAttribute("role", "status");
    note.id = "saisie-retablie";
    note.textContent = "Votre session a expiré. Ce que vous aviez saisi a été rétabli : " +
      "vérifiez-le, puis envoyez le formulaire à nouveau.";
    form.insertAdjacentElement("beforebegin", note);
    note.setAttribute("tabindex", "-1");
    note.focus();
    return true;
  }

  function onLoad() {
    tieErrors();
    var draft = read();
    var expiredLogin = document.querySelector("[data-session-expired]");
    if (draft && Date.now() - draft.at > MAX_AGE) { store.removeItem(KEY); draft = null; }
    if (draft && expiredLogin) {
      draft.expired = true; // the sending was refused: keep it for after the login
      store.setItem(KEY, JSON.stringify(draft));
    } else if (draft && draft.expired && location.pathname === draft.page) {
      restore(draft);
      store.removeItem(KEY);
    } else if (draft && !draft.expired) {
      store.removeItem(KEY); // the server answered the sending: nothing to give back
    }
    document.addEventListener("submit", function (e) {
      var form = e.target;
      if (form.matches("form.logout")) { store.removeItem(KEY); return; }
      if (form.querySelector("input[type=password]")) return;
      keep(form);
    }, true);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", onLoad);
  else onLoad();
})();
