// The map: deck.gl, drawn from a pydeck deck's JSON, that tells the page where it has been
// moved to and what was clicked. Streamlit's own pydeck chart reports clicks only, so a view
// moved by hand could not be kept in the URL.
//
// deck.gl comes from pydeck's own bundle (@deck.gl/jupyter-widget: createDeck, updateDeck),
// served by this app's server (data.bundle): nothing is fetched from the internet but the
// base map's tiles.
//
// Each page run sends the whole deck again. Only the layers whose JSON changed are converted
// anew: deck.gl recomputes a layer whose data is a new object, so converting them all would
// redraw every ward and cell after each filter change, and after each move reported.

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

function rowsOf(json) {
  if (Array.isArray(json.data)) return json.data;
  if (json.data && Array.isArray(json.data.features)) return json.data.features;
  return [];
}

function pickedIndex(json, pick) {
  if (!pick || pick.layer !== json.id) return -1;
  const keyName = ["h3_cell", "ward_code"].find((name) => name in pick.object);
  if (!keyName) return -1;
  return rowsOf(json).findIndex((row) => (row.properties || row)[keyName] === pick.object[keyName]);
}

// Convert the layers whose JSON changed since the last run, and keep the others' deck.gl layers.
function convertLayers(map, jsonLayers) {
  const texts = jsonLayers.map((json) => JSON.stringify(json));
  const fresh = jsonLayers.filter((json, i) => map.layers.get(json.id)?.text !== texts[i]);
  let converted = [];
  if (fresh.length) {
    // pydeck's converter hands its result to a deck's setProps: this one only keeps it.
    window.updateDeck({ layers: fresh }, { setProps: (props) => (converted = props.layers || []) });
  }
  const made = new Map(converted.map((layer) => [layer.id, layer]));
  const kept = new Map();
  jsonLayers.forEach((json, i) => {
    const layer = made.get(json.id) || map.layers.get(json.id).layer;
    kept.set(json.id, { text: texts[i], json, layer });
  });
  map.layers = kept;
}

function drawnLayers(map) {
  return [...map.layers.values()].map(({ json, layer }) => {
    const index = pickedIndex(json, map.pick);
    return index < 0 ? layer : layer.clone({ highlightedObjectIndex: index, highlightColor: PICKED_COLOUR });
  });
}

// The map is held near the study area and within the zooms the page accepts (data.limits, as
// the page checks a link's view), so every view it reports is one a link can hold. The edges
// are kept a little inside, as a reported view is rounded.
function within(view, limits) {
  if (!limits) return view;
  const clamp = (value, low, high) => Math.min(Math.max(value, low + 1e-4), high - 1e-4);
  return {
    ...view,
    longitude: clamp(view.longitude, limits.west, limits.east),
    latitude: clamp(view.latitude, limits.south, limits.north),
    zoom: clamp(view.zoom, limits.min_zoom, limits.max_zoom),
  };
}

function zoomBy(map, step) {
  const now = map.current || map.applied;
  map.applied = { ...within({ ...now, zoom: now.zoom + step }, map.limits), transitionDuration: 250 };
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

function create(host, spec, data) {
  const asked = spec.initialViewState ? viewOf(spec.initialViewState) : null;
  // reported: the views this map has reported since the page last moved it. The page's answers
  // echo them, and may come late: an answer to an earlier move, arriving after the next one,
  // must not pull the map back to it. last: the view last reported or set by the page.
  const map = { asked, shown: asked, last: asked, reported: [], timer: null, pick: null, touched: false };
  map.layers = new Map();
  map.limits = data.limits;
  host.dataset.view = JSON.stringify(asked);
  const onViewStateChange = ({ viewState }) => {
    const held = within(viewState, map.limits);
    map.current = held;
    map.shown = viewOf(held);
    clearTimeout(map.timer);
    map.timer = setTimeout(() => {
      host.dataset.view = JSON.stringify(map.shown); // where the map rests (end-to-end tests read it)
      // Only a move by hand is reported: deck.gl and the base map also adjust the view as
      // they start and as the page resizes them.
      if (map.touched && !sameView(map.shown, map.last)) {
        map.last = map.shown;
        map.reported = [...map.reported.slice(-31), map.shown];
        // Stamped, so that a view left and come back to is a new report.
        map.setStateValue("view", { ...map.shown, at: Date.now() });
      }
    }, SETTLE_MS);
    return held; // deck.gl draws the view returned
  };
  const handleEvent = (name, payload) => {
    if (name === "deck-click-event") {
      map.pick = picked(payload);
      map.setStateValue("pick", map.pick);
      map.deck.setProps({ layers: drawnLayers(map) });
    }
  };
  map.applied = spec.initialViewState;
  convertLayers(map, spec.layers || []);
  const jsonInput = { ...spec, layers: [] };
  map.deck = window.createDeck({ container: host, jsonInput, tooltip: data.tooltip, handleEvent });
  map.deck.setProps({ layers: drawnLayers(map), onViewStateChange });
  addZoomButtons(host, map);
  for (const name of ["pointerdown", "wheel", "keydown", "touchstart"]) {
    host.addEventListener(name, () => (map.touched = true), { capture: true, passive: true });
  }
  return map;
}

function draw(host, data, setStateValue) {
  if (!host.isConnected) return; // the page moved on while deck.gl was loading
  let map = host.__map;
  if (!map || map.text !== data.spec) {
    const spec = JSON.parse(data.spec);
    if (!map) {
      map = host.__map = create(host, spec, data);
    } else {
      update(map, spec);
    }
    map.text = data.spec;
  }
  map.setStateValue = setStateValue; // each render's own
}

function update(map, spec) {
  convertLayers(map, spec.layers || []);
  const props = { layers: drawnLayers(map) };
  // A view the page asks for anew (a link, a search, "whole area") moves the map; a view the
  // map itself reported, coming back in the page's answer, does not.
  const asked = spec.initialViewState ? viewOf(spec.initialViewState) : null;
  const echo = asked && map.reported.some((view) => sameView(asked, view));
  if (asked && !sameView(asked, map.asked) && !echo) {
    map.applied = spec.initialViewState;
    map.shown = asked;
    map.last = asked;
    map.reported = [];
    props.initialViewState = map.applied;
  }
  map.asked = asked;
  map.deck.setProps(props);
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
  // Called when the element leaves the page, and also when a newer render overtook this one:
  // only the first tears the map down (its WebGL contexts are few and shared by the browser).
  return () => {
    if (host.isConnected || !host.__map) return;
    clearTimeout(host.__map.timer);
    host.__map.deck.finalize();
    host.__map = null;
  };
}
