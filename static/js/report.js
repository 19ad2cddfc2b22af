// The « Compte rendu » panel (templates/_report_editor.html): the specialist drafts the report
// during or after the call, saved through the JSON API (« Enregistrer le brouillon », every
// 30 seconds while changed, and when a field is left), then signs it after a confirmation.
// Once signed it is shown read-only, with « Ajouter un addendum ». Without this script the
// panel's forms post to the report page instead (not in the room, where a page load would
// end the call: there this script is what sends them).
(function () {
  "use strict";

  var root = document.getElementById("report-editor");
  if (!root || !window.fetch) return;
  var csrf = document.querySelector('meta[name="csrf-token"]').content;
  var api = "/api/bookings/" + root.dataset.booking + "/report";
  var $ = function (id) { return document.getElementById(id); };
  var form = $("report-form"), status = $("report-status"), signedBox = $("report-signed");
  var TEXTS = ["reason", "findings", "conclusion", "recommendations", "prescriptions", "follow_up_when"];
  var TITLES = [["reason", "Motif"], ["findings", "Constatations"], ["conclusion", "Conclusion"],
    ["recommendations", "Recommandations"], ["prescriptions", "Prescriptions"]];
  var dirty = false, busy = false, signed = false;

  function say(text, error) {
    status.textContent = text;
    status.className = error ? "error" : "muted";
  }

  function when(iso) {
    var at = new Date(iso);
    return "le " + at.toLocaleDateString("fr-FR") + " à " +
      at.toLocaleTimeString("fr-FR", { hour: "2-digit", minute: "2-digit" });
  }

  async function call(method, url, body) {
    var response = await fetch(url, {
      method: method,
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body)
    });
    var data = await response.json().catch(function () { return {}; });
    if (!response.ok) {
      var error = new Error((data.error && data.error.message) || "Erreur " + response.status);
      error.status = response.status;
      throw error;
    }
    return data;
  }

  function fields() {
    var body = {};
    TEXTS.forEach(function (name) { body[name] = form.elements[name].value; });
    body.follow_up_needed = form.elements.follow_up_needed.checked;
    return body;
  }

  function fill(report) {
    TEXTS.forEach(function (name) { form.elements[name].value = report[name] || ""; });
    form.elements.follow_up_needed.checked = !!report.follow_up_needed;
  }

  function paragraph(text, className) {
    var p = document.createElement("p");
    p.textContent = text;
    if (className) p.className = className;
    return p;
  }

  function heading(text) {
    var h = document.createElement("h3");
    h.textContent = text;
    return h;
  }

  function showSigned(report) {
    signed = true;
    dirty = false;
    form.hidden = true;
    signedBox.hidden = false;
    $("report-signed-line").textContent = "Compte rendu signé par " + report.author.name + " " + when(report.signed_at);
    var sections = $("report-sections");
    sections.replaceChildren();
    TITLES.forEach(function (pair) {
      sections.append(heading(pair[1]), paragraph(report[pair[0]] || "Néant", "prose"));
    });
    var follow = report.follow_up_needed ? "Oui" + (report.follow_up_when ? ", " + report.follow_up_when : "") : "Non";
    sections.append(heading("Suivi nécessaire"), paragraph(follow));
    $("report-hash").textContent = report.sha256;
    var addenda = $("report-addenda");
    addenda.replaceChildren();
    report.addenda.forEach(function (a, index) {
      var article = document.createElement("article");
      article.className = "card addendum";
      article.append(
        heading("Addendum " + (index + 1)),
        paragraph(a.body, "prose"),
        paragraph("Signé par " + a.author.name + " " + when(a.signed_at) + " · SHA-256 " + a.sha256, "muted")
      );
      addenda.append(article);
    });
    say("Le compte rendu est signé : les corrections se font par addendum.");
  }

  async function save() {
    if (busy || signed) return;
    busy = true;
    dirty = false;
    say("Enregistrement…");
    try {
      var saved = await call("PUT", api, fields());
      say("Brouillon enregistré " + when(saved.updated_at) + ".");
    } catch (error) {
      dirty = true;
      say(error.message, true);
    } finally {
      busy = false;
    }
  }

  async function sign() {
    if (busy || signed) return;
    var sure = window.confirm(
      "Signer le compte rendu ? Il ne pourra plus être modifié : les corrections se feront par addendum."
    );
    if (!sure) return;
    busy = true;
    say("Signature…");
    try {
      var report = await call("POST", api + "/sign", fields());
      if (root.dataset.reload) {
        window.location.assign(root.dataset.reload);
        return;
      }
      showSigned(report);
    } catch (error) {
      say(error.message, true);
    } finally {
      busy = false;
    }
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var action = event.submitter ? event.submitter.value : "enregistrer";
    if (action === "signer") sign(); else save();
  });
  form.addEventListener("input", function () { dirty = true; });
  form.addEventListener("change", function () { if (dirty) save(); });
  window.setInterval(function () { if (dirty) save(); }, 30000);

  $("report-addendum-form").addEventListener("submit", async function (event) {
    event.preventDefault();
    var text = $("report-addendum");
    try {
      showSigned(await call("POST", api + "/addenda", { body: text.value }));
      text.value = "";
      say("L'addendum est signé et ajouté au compte rendu.");
    } catch (error) {
      say(error.message, true);
    }
  });

  if (root.dataset.fetch === "1") {
    call("GET", api).then(function (report) {
      if (report.status === "signed") showSigned(report);
      else { fill(report); say("Brouillon enregistré " + when(report.updated_at) + "."); }
    }).catch(function () { /* no report yet: the fields stay empty */ });
  }
})();
