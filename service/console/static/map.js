/* The console's map (service/console/map.py): outlines and alerts as GeoJSON from this
   console, drawn with the vendored Leaflet; no tiles, nothing from the internet. A static
   file because the console's CSP allows no inline script: the URLs and the translated
   words come in the map element's data- attributes. Colours are classes (map.css). */
(function () {
  "use strict";
  var el = document.getElementById("map");
  if (!el || !window.L || !window.fetch) { return; }
  var labels = JSON.parse(el.dataset.labels);
  var text = labels.text;
  var status = document.getElementById("map-status");
  el.classList.add("on");

  var map = L.map(el, {attributionControl: false, zoomSnap: 0.5, minZoom: 5, maxZoom: 14});
  L.control.attribution({prefix: "Leaflet"}).addAttribution(el.dataset.credit).addTo(map);
  map.setView([-2.5, 28.2], 6);

  function say(message) { status.textContent = message; }
  function fill(template, n) { return template.replace("%(n)s", String(n)); }
  function get(url) {
    return fetch(url, {credentials: "same-origin", headers: {Accept: "application/geo+json"}})
      .then(function (answer) {
        if (!answer.ok) { throw new Error(url + ": " + answer.status); }
        return answer.json();
      });
  }
  function ago(hours) {
    if (hours === null || hours === undefined) { return "—"; }
    return hours < 48 ? fill(text.hours, Math.round(hours)) : fill(text.days, Math.round(hours / 24));
  }
  function category(code) { return labels.categories[code || ""] || code; }
  function classes(props, kind) {
    return "mk " + kind + " cat-" + (props.category || "none") + " age-" + props.age;
  }

  /* Popups are DOM nodes with textContent: a place name is data, never markup. */
  function node(tag, content, className) {
    var n = document.createElement(tag);
    if (content !== undefined) { n.textContent = content; }
    if (className) { n.className = className; }
    return n;
  }
  function row(list, name, value) {
    var li = node("li");
    li.appendChild(node("span", text.field.replace("%(name)s", name), "name"));
    li.appendChild(document.createTextNode(value));
    list.appendChild(li);
  }
  function link(path, words) {
    var a = node("a", words);
    a.href = path;
    return a;
  }
  // a broadcast around this alert: the composer, with the radius filled in (broadcasters
  // only; never around a restricted report, which the composer would refuse anyway)
  function composeLink(box, alertId, code) {
    if (!labels.compose || labels.restricted.indexOf(code) >= 0) { return; }
    var p = node("p");
    p.appendChild(link(labels.compose + "?radius_alert=" + encodeURIComponent(alertId) + "&radius_km=10",
                       text.broadcast));
    box.appendChild(p);
  }
  function popup(props) {
    var box = node("div", undefined, "popup");
    var list = node("ul");
    if (props.kind === "incident") {
      box.appendChild(node("strong", text.incident + " #" + props.id + " · " + category(props.category)));
      row(list, text.place, props.place);
      row(list, text.alerts, String(props.alert_count));
      row(list, text.sources, String(props.source_count));
      row(list, text.age, ago(props.age_hours));
      box.appendChild(list);
      var links = node("p");
      props.alerts.forEach(function (a, i) {
        if (i) { links.appendChild(document.createTextNode(" · ")); }
        links.appendChild(link(a.path, "#" + a.id));
      });
      box.appendChild(links);
      if (props.alerts.length) { composeLink(box, props.alerts[0].id, props.category); }
      return box;
    }
    box.appendChild(node("strong", (props.reference || "#" + props.id) + " · " + category(props.category)));
    row(list, text.status, labels.statuses[props.status] || props.status);
    row(list, text.place, props.place);
    row(list, text.age, ago(props.age_hours));
    box.appendChild(list);
    box.appendChild(link(props.path, text.open));
    composeLink(box, props.id, props.category);
    return box;
  }

  /* Territory names only when zoomed in enough to read them. */
  var territoryNames = L.layerGroup();
  map.on("zoomend", function () {
    if (map.getZoom() >= 8) { territoryNames.addTo(map); } else { territoryNames.remove(); }
  });

  function outlines() {
    return Promise.all([get(el.dataset.adm2), get(el.dataset.adm1)]).then(function (found) {
      var territories = L.geoJSON(found[0], {style: {className: "adm2", weight: 1, fill: false},
                                             interactive: false}).addTo(map);
      var provinces = L.geoJSON(found[1], {style: {className: "adm1", weight: 2, fillOpacity: 0.08},
                                           interactive: false}).addTo(map);
      found[0].features.forEach(function (f) {  /* the territory's name where it is widest */
        var centre = L.geoJSON(f).getBounds().getCenter();
        L.tooltip({permanent: true, direction: "center", className: "territory-label"})
          .setLatLng(centre).setContent(f.properties.ADM2_FR).addTo(territoryNames);
      });
      found[1].features.forEach(function (f) {
        var at = f.properties.label;
        var point = at ? L.latLng(at[1], at[0]) : L.geoJSON(f).getBounds().getCenter();
        L.tooltip({permanent: true, direction: "center", className: "province-label"})
          .setLatLng(point).setContent(f.properties.ADM1_FR).addTo(map);
      });
      map.fitBounds(provinces.getBounds(), {padding: [8, 8]});
      map.setMaxBounds(provinces.getBounds().pad(0.5));
      territories.bringToBack();
    });
  }
  function alerts() {
    return get(el.dataset.alerts).then(function (found) {
      L.geoJSON(found, {
        pointToLayer: function (f, at) {
          var incident = f.properties.kind === "incident";
          return L.circleMarker(at, {radius: incident ? 11 : 6, weight: incident ? 3 : 1, fill: !incident,
                                     className: classes(f.properties, incident ? "ring" : "dot")});
        },
        onEachFeature: function (f, layer) { layer.bindPopup(popup(f.properties)); }
      }).addTo(map);
      if (found.shown < found.drawn) { say(fill(text.newest, found.shown)); }
    });
  }

  outlines().then(alerts).catch(function () { say(text.failed); });
})();
