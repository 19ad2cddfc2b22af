// New tele-expertise request: drag-and-drop photos with previews, then the draft, the photos
// and the sending go through the JSON API. A refused photo stops everything before it is sent.
(function () {
  "use strict";
  var form = document.getElementById("expertise-form");
  if (!form || !window.fetch || !window.FormData) return;
  var csrf = document.querySelector('meta[name="csrf-token"]').content;
  var zone = document.getElementById("dropzone"), input = document.getElementById("photo-input");
  var list = document.getElementById("previews"), status = document.getElementById("expertise-status");
  var files = [];

  function say(text, kind) { status.hidden = false; status.textContent = text; status.className = "verdict " + (kind || ""); }

  function render() {
    list.innerHTML = "";
    files.forEach(function (file, i) {
      var li = document.createElement("li");
      var img = document.createElement("img");
      img.alt = file.name;
      img.src = URL.createObjectURL(file);
      var remove = document.createElement("button");
      remove.type = "button"; remove.className = "link"; remove.textContent = "Retirer";
      remove.addEventListener("click", function () { files.splice(i, 1); render(); });
      li.appendChild(img); li.appendChild(document.createTextNode(" " + file.name + " ")); li.appendChild(remove);
      list.appendChild(li);
    });
  }

  function add(chosen) {
    Array.prototype.forEach.call(chosen, function (file) {
      if (files.length >= 10) { say("10 photos au plus.", "warn"); return; }
      if (file.size > 15 * 1024 * 1024) { say("« " + file.name + " » dépasse 15 Mo.", "bad"); return; }
      files.push(file);
    });
    render();
  }

  input.addEventListener("change", function () { add(input.files); input.value = ""; });
  ["dragenter", "dragover"].forEach(function (name) {
    zone.addEventListener(name, function (e) { e.preventDefault(); zone.classList.add("over"); });
  });
  ["dragleave", "drop"].forEach(function (name) {
    zone.addEventListener(name, function (e) { e.preventDefault(); zone.classList.remove("over"); });
  });
  zone.addEventListener("drop", function (e) { add(e.dataTransfer.files); });

  async function call(url, options) {
    var response = await fetch(url, options);
    var data = await response.json().catch(function () { return {}; });
    if (!response.ok) throw new Error((data.error && data.error.message) || "Erreur " + response.status);
    return data;
  }

  // The specialty's questions (inputs named answers.<name>) as JSON: yes/no radios become
  // booleans, numbers numbers (a French comma too), blanks are left out.
  function answers(data) {
    var found = {};
    form.querySelectorAll("[name^='answers.']").forEach(function (input) {
      var name = input.name.slice(8);
      if (name in found) return;
      var value = data.get(input.name);
      if (value === null || value === "") return;
      if (input.type === "radio") found[name] = value === "oui";
      else if (input.inputMode === "decimal") {
        var number = Number(String(value).replace(",", "."));
        found[name] = isNaN(number) ? value : number;
      } else found[name] = value;
    });
    return found;
  }

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    var action = event.submitter ? event.submitter.value : "send";
    var data = new FormData(form);
    var giver = data.get("consent_given_by");
    if (!data.get("patient_id")) { say("Choisissez le résident.", "bad"); return; }
    if (action === "send" && !giver) {
      say("Recueillez le consentement du résident avant d'envoyer la demande (ou enregistrez un brouillon).", "bad");
      return;
    }
    var buttons = form.querySelectorAll("button[type=submit]");
    buttons.forEach(function (b) { b.disabled = true; });
    try {
      say("Enregistrement de la demande…", "pending");
      var draft = await call("/api/expertise", {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify({
          specialty: data.get("specialty"), patient_id: parseInt(data.get("patient_id"), 10),
          question: data.get("question"), clinical_context: data.get("clinical_context"),
          urgency: data.get("urgency"), answers: answers(data),
          consent: giver ? { given_by: giver, method: data.get("consent_method") } : null
        })
      });
      if (files.length) {
        say("Envoi des photos…", "pending");
        var upload = new FormData();
        files.forEach(function (f) { upload.append("photos", f, f.name); });
        await call("/api/expertise/" + draft.id + "/photos", { method: "POST", headers: { "X-CSRF-Token": csrf }, body: upload });
      }
      if (action === "send") {
        await call("/api/expertise/" + draft.id + "/send", { method: "POST", headers: { "X-CSRF-Token": csrf } });
      }
      location.href = "/teleexpertise/" + draft.id;
    } catch (err) {
      say(err.message, "bad");
      buttons.forEach(function (b) { b.disabled = false; });
    }
  });
})();
