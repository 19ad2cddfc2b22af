// "Aperçu des créneaux": the slots the add-rule form would create, before saving it.
// Progressive enhancement: the button stays hidden without JavaScript and the form works alone.
(function () {
  "use strict";

  var SHOWN = 20;
  var form = document.getElementById("rule-form");
  var button = document.getElementById("rule-preview");
  var output = document.getElementById("rule-preview-result");
  var meta = document.querySelector('meta[name="csrf-token"]');
  if (!form || !button || !output || !meta || !window.fetch) return;

  var tz = form.dataset.timezone || "Europe/Paris";
  var day = new Intl.DateTimeFormat("fr-FR", {
    weekday: "long", day: "numeric", month: "long", year: "numeric", timeZone: tz
  });
  var hour = new Intl.DateTimeFormat("fr-FR", { hour: "2-digit", minute: "2-digit", timeZone: tz });

  // Numbers as numbers; anything else is sent as typed so the server names the bad field.
  function number(value) {
    return /^\d+$/.test(value) ? parseInt(value, 10) : value;
  }

  function body() {
    var data = new FormData(form);
    var json = {
      weekday: number(data.get("weekday")),
      start: data.get("start"),
      end: data.get("end"),
      slot_minutes: number(data.get("slot_minutes")),
      act_types: data.getAll("act_types"),
      open_on_public_holidays: data.get("open_on_public_holidays") !== null
    };
    if (data.get("buffer_minutes")) json.buffer_minutes = number(data.get("buffer_minutes"));
    if (data.get("valid_from")) json.valid_from = data.get("valid_from");
    if (data.get("valid_until")) json.valid_until = data.get("valid_until");
    return json;
  }

  // The API names fields by their keys (« slot_minutes »); show the form's labels instead.
  function readable(message) {
    return message.replace(/« ([a-z_]+) »/g, function (whole, name) {
      var field = form.querySelector('[name="' + name + '"]');
      if (!field) return whole;
      var fieldset = name === "act_types" && field.closest("fieldset");
      var text = fieldset ? fieldset.querySelector("legend") : field.labels && field.labels[0];
      return text ? "« " + text.textContent.trim() + " »" : whole;
    });
  }

  function show(nodes) {
    output.replaceChildren.apply(output, nodes);
  }

  function paragraph(text, className) {
    var p = document.createElement("p");
    p.textContent = text;
    if (className) p.className = className;
    return p;
  }

  function list(items) {
    if (items.length === 0) {
      return [paragraph("Cette plage ne crée aucun créneau sur la période ouverte à la réservation.", "empty")];
    }
    var heading = items.length > SHOWN
      ? items.length + " créneaux sur la période ouverte ; voici les " + SHOWN + " premiers :"
      : items.length + (items.length > 1 ? " créneaux" : " créneau") + " sur la période ouverte :";
    var ul = document.createElement("ul");
    ul.className = "preview";
    items.slice(0, SHOWN).forEach(function (item) {
      var start = new Date(item.starts_at);
      var end = new Date(item.ends_at);
      var li = document.createElement("li");
      li.textContent = day.format(start) + ", " + hour.format(start) + "–" + hour.format(end);
      ul.appendChild(li);
    });
    return [paragraph(heading, "preview-title"), ul];
  }

  button.hidden = false;
  button.addEventListener("click", function () {
    button.disabled = true;
    show([paragraph("Calcul de l'aperçu…", "muted")]);
    fetch(form.dataset.previewUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": meta.content },
      body: JSON.stringify(body())
    })
      .then(function (response) {
        return response.json().then(function (data) {
          if (response.ok) return data;
          var refused = new Error(data.error ? data.error.message : "Erreur " + response.status);
          refused.fromServer = true;
          throw refused;
        });
      })
      .then(function (data) { show(list(data.items)); })
      .catch(function (error) {
        var text = error.fromServer
          ? readable(error.message)
          : "L'aperçu est indisponible pour le moment. Vous pouvez enregistrer la plage sans lui.";
        show([paragraph(text, "alert")]);
      })
      .then(function () { button.disabled = false; });
  });
})();
