// New tele-expertise request: photos chosen with the file chooser (the drop zone is its
// label, reached by Tab, opened with Enter or Space) or dropped, with previews; then the
// draft, the photos and the sending go through the JSON API. A file that is not a photo is
// refused here, with the same message however it came, and never sent.
(function () {
  "use strict";
  var form = document.getElementById("expertise-form");
  if (!form || !window.fetch || !window.FormData) return;
  var csrf = document.querySelector('meta[name="csrf-token"]').content;
  var zone = document.getElementById("dropzone"), input = document.getElementById("photo-input");
  var list = document.getElementById("previews"), status = document.getElementById("expertise-status");
  var photoStatus = document.getElementById("photo-status");
  var files = [], shown = [];
  // Space opens a focused file input everywhere; Enter does not in every browser.
  input.addEventListener("keydown", function (e) {
    if (e.key === "Enter") { e.preventDefault(); input.click(); }
  });
  var MAX_FILES = 10, MAX_BYTES = 15 * 1024 * 1024;
  var TYPES = ["image/jpeg", "image/png", "image/heic", "image/heif"];

  function say(text, kind) { status.hidden = false; status.textContent = text; status.className = "verdict " + (kind || ""); }

  // Photos added, refused or removed are announced here (role="status"), whichever way
  // they came: the file chooser (mouse or keyboard) or a drop.
  function tell(lines, kind) { photoStatus.textContent = lines.join(" "); photoStatus.className = "photo-status " + kind; }

  function count() { return files.length + (files.length > 1 ? " photos" : " photo") + " sur " + MAX_FILES + "."; }

  // Browsers often give HEIC files no type: their extension says what they are.
  function isPhoto(file) {
    if (TYPES.indexOf(file.type) >= 0) return true;
    return !file.type && /\.(jpe?g|png|heic|heif)$/i.test(file.name);
  }

  function render() {
    shown.forEach(function (url) { URL.revokeObjectURL(url); });
    shown = [];
    list.innerHTML = "";
    files.forEach(function (file, i) {
      var li = document.createElement("li");
      var img = document.createElement("img");
      img.alt = "";  // the name follows as text
      img.src = URL.createObjectURL(file);
      shown.push(img.src);
      var name = document.createElement("span");
      name.textContent = file.name;
      var remove = document.createElement("button");
      remove.type = "button"; remove.className = "link";
      remove.textContent = "Retirer";
      var which = document.createElement("span");
      which.className = "visually-hidden"; which.textContent = " « " + file.name + " »";
      remove.appendChild(which);
      remove.addEventListener("click", function () {
        files.splice(i, 1); render();
        tell(["« " + file.name + " » retirée.", count()], "ok");
        var next = list.querySelectorAll("button")[Math.min(i, files.length - 1)];
        (next || input).focus();
      });
      li.appendChild(img); li.appendChild(name); li.appendChild(remove);
      list.appendChild(li);
    });
  }

  function add(chosen) {
    var added = [], refused = [];
    Array.prototype.forEach.call(chosen, function (file) {
      var label = "« " + file.name + " »";
      if (!isPhoto(file)) refused.push(label + " n'est pas une photo JPEG, PNG ou HEIC.");
      else if (file.size > MAX_BYTES) refused.push(label + " dépasse 15 Mo.");
      else if (files.length >= MAX_FILES) refused.push(label + " : 10 photos au plus.");
      else { files.push(file); added.push(label); }
    });
    render();
    var lines = refused.slice();
    if (added.length) lines.push((added.length > 1 ? "Ajoutées : " : "Ajoutée : ") + added.join(", ") + ".");
    if (lines.length) lines.push(count());
    tell(lines, refused.length ? "bad" : "ok");
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
