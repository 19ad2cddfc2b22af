// « Importer un extrait FINESS »: the file goes as the raw body (tens of megabytes: no form
// body limit, no multipart to parse before the CSRF check), then the preview page opens.
(function () {
  "use strict";
  var form = document.getElementById("finess-upload");
  if (!form || !window.fetch) return;
  var csrf = document.querySelector('meta[name="csrf-token"]').content;
  var status = document.getElementById("finess-status");

  function say(text, kind) { status.hidden = false; status.textContent = text; status.className = "verdict " + (kind || ""); }

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    var file = document.getElementById("finess-file").files[0];
    if (!file) { say("Choisissez le fichier de l'extrait.", "bad"); return; }
    var query = new URLSearchParams({
      nom: file.name,
      region: document.getElementById("finess-region").value,
      departements: document.getElementById("finess-departements").value
    });
    var button = form.querySelector("button[type=submit]");
    button.disabled = true;
    say("Envoi de « " + file.name + " » (" + Math.round(file.size / 1024) + " Ko)…", "pending");
    try {
      var response = await fetch(form.dataset.target + "?" + query.toString(), {
        method: "POST",
        headers: { "Content-Type": "text/csv", "X-CSRF-Token": csrf },
        body: file
      });
      var data = await response.json().catch(function () { return {}; });
      if (!response.ok) throw new Error((data.error && data.error.message) || "Erreur " + response.status);
      say("Fichier reçu, calcul de l'aperçu…", "pending");
      location.href = data.url;
    } catch (err) {
      say(err.message, "bad");
      button.disabled = false;
    }
  });
})();
