// The map: deck.gl, drawn from a pydeck deck's JSON, that tells the page where it has been
// moved to and what was clicked. Streamlit's own pydeck chart reports clicks only, so a view
// moved by hand could not be kept in the URL.
//
// deck.gl comes from pydeck's own bundle (@deck.gl/jupyter-widget: createDeck, updateDeck),
// served by this app's server (data.bundle): nothing is fetched from the internet but the
// base map's tiles.

const SETTLE_MS = 400; // a view is reported once the map has been still this long

function loadBundle(url) {
  window.__commonGroundDeck ||= new Promise((resolve, reject) => {
    if (typeof window.createDeck === "function") return resolve();
    const script = document.createElement("script");
    script.src = url;
    script.onload = () => resolve();
    script.onerror = () => reject(new Error(`deck.gl could not be loaded from ${url}`));
    document.head.appendChild(script);
  });
  return window.__commonGroundDeck;
}

function viewOf(state) {
  return {
    latitude: Math.round(state.latitude * 1e5) / 1e5,
    longitude: Math.round(state.longitude * 1e5) / 1e5,
    zoom: Math.round(state.zoom * 100) / 100,
  };
}

function sameView(a, b) {
  return (
    !!a &&
    !!b &&
    Math.abs(a.latitude - b.latitude) < 1e-4 &&
    Math.abs(a.longitude - b.longitude) < 1e-4 &&
    Math.abs(a.zoom - b.zoom) < 0.02
  );
}

// What Python reads of a clicked object: its fields, never its geometry (a ward's outline
// would be sent back on every click for nothing).
function picked(info) {
  if (!info || !info.object || !info.layer) return null;
  const object = info.object.properties || info.object;
  const fields = {};
  for (const [name, value] of Object.entries(object)) {
    if (name !== "geometry" && (value === null || typeof value !== "object")) fields[name] = value;
  }
  return { layer: info.layer.id, object: fields };
}

// The object last clicked stays marked, as long as the layer it was picked on draws it: found
// again by its key after a filter change, since its place in the layer's data may have moved.
const PICKED_COLOUR = [0, 0, 0, 110];

function rowsOf(layer) {
  if (Array.isArray(layer.data)) return layer.data;
  if (layer.data && Array.isArray(layer.data.features)) return layer.data.features;
  return [];
}

function markPicked(spec, pick) {
  const keyName = pick && ["h3_cell", "ward_code"].find((name) => name in pick.object);
  for (const layer of spec.layers || []) {
    delete layer.highlightedObjectIndex;
    if (!keyName || layer.id !== pick.layer) continue;
    const index = rowsOf(layer).findIndex((row) => (row.properties || row)[keyName] === pick.object[keyName]);
    if (index >= 0) {
      layer.highlightedObjectIndex = index;
      layer.highlightColor = PICKED_COLOUR;
    }
  }
}

function zoomBy(map, step) {
  const view = { ...(map.current || map.applied), zoom: (map.current || map.applied).zoom + step };
  map.applied = { ...view, transitionDuration: 250 };
  map.deck.setProps({ initialViewState: map.applied });
}

function addZoomButtons(host, map) {
  const bar = document.createElement("div");
  bar.className = "deck-map-zoom";
  for (const [label, text, step] of [["Zoom in", "+", 1], ["Zoom out", "\u2212", -1]]) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = text;
    button.title = label;
    button.setAttribute("aria-label", label);
    button.addEventListener("click", () => zoomBy(map, step));
    bar.appendChild(button);
  }
  host.appendChild(bar);
}

function draw(host, data, setStateValue) {
  const spec = JSON.parse(data.spec);
  const asked = spec.initialViewState ? viewOf(spec.initialViewState) : null;
  const state = host.__map;
  if (!state) {
    const map = { asked, shown: asked, reported: null, timer: null, text: data.spec, pick: null, touched: false };
    const handleEvent = (name, payload) => {
      if (name === "deck-view-state-change-event") {
        map.current = payload;
        map.shown = viewOf(payload);
        clearTimeout(map.timer);
        map.timer = setTimeout(() => {
          // Only a move by hand is reported: deck.gl and the base map also adjust the view
          // as they start and as the page resizes them.
          if (map.touched && !sameView(map.shown, map.reported)) {
            map.reported = map.shown;
            // Stamped, so that a view left and come back to is a new report.
            setStateValue("view", { ...map.shown, at: Date.now() });
          }
        }, SETTLE_MS);
      } else if (name === "deck-click-event") {
        map.pick = picked(payload);
        markPicked(map.spec, map.pick);
        window.updateDeck(map.spec, map.deck);
        setStateValue("pick", map.pick);
      }
    };
    map.applied = spec.initialViewState;
    map.spec = spec;
    map.deck = window.createDeck({ container: host, jsonInput: spec, tooltip: data.tooltip, handleEvent });
    addZoomButtons(host, map);
    for (const name of ["pointerdown", "wheel", "keydown", "touchstart"]) {
      host.addEventListener(name, () => (map.touched = true), { capture: true, passive: true });
    }
    host.__map = map;
    return;
  }
  if (state.text === data.spec) return;
  state.text = data.spec;
  state.spec = spec;
  markPicked(spec, state.pick);
  // A view the page asks for anew (a link, a search, "whole area") moves the map; the view the
  // map itself reported, coming back in the page's answer, must not pull it back while it is
  // still being moved.
  const moved = asked && !sameView(asked, state.asked) && !sameView(asked, state.reported);
  state.asked = asked;
  if (moved) {
    state.applied = spec.initialViewState;
    state.shown = asked;
    state.touched = false;
  } else {
    spec.initialViewState = state.applied; // the same object: deck.gl keeps the view
  }
  window.updateDeck(spec, state.deck);
}

export default function (component) {
  const { data, parentElement, setStateValue } = component;
  let host = parentElement.querySelector(".deck-map");
  if (!host) {
    host = document.createElement("div");
    host.className = "deck-map";
    parentElement.appendChild(host);
  }
  host.style.height = `${data.height}px`;
  loadBundle(data.bundle)
    .then(() => draw(host, data, setStateValue))
    .catch((error) => {
      host.textContent = `The map could not be drawn: ${error.message}`;
    });
}
