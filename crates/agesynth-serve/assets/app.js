// agesynth's page: choose or drop a photo, see its faces outlined, drag the
// age slider. Everything goes through the JSON API (POST /api/age). The
// generator is conditioned on age groups, so each group is asked for once
// per photo and kept here; moving the slider within a group costs nothing.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const el = {
    file: $("file"), drop: $("drop"), age: $("age"), ageValue: $("age-value"),
    group: $("group"), all: $("all"), download: $("download"),
    downloadStrip: $("download-strip"), status: $("status"), error: $("error"),
    before: $("before"), boxes: $("boxes"), after: $("after"),
    beforeCaption: $("before-caption"), afterCaption: $("after-caption"),
    allAges: $("all-ages"), grid: $("grid"), limits: $("limits"), version: $("version"),
  };

  // Age groups of the generator (GET /api/version); a fallback until known.
  let groups = [0, 10, 20, 30, 40, 50].map((from, i) => ({
    group: i, from, label: i === 5 ? "50+" : `${from}-${from + 9}`, centre: from + 4.5,
  }));
  let photo = null;      // { file, name, stem, url }
  let session = 0;       // one per photo: answers for an older photo are dropped
  let cache = new Map(); // group -> { age, label, url }
  let strip = null;      // data URL of the strip
  let inflight = null;   // session whose single-age request loop is running
  let wanted = null;     // group wanted once the running request is done

  const png = (b64) => `data:image/png;base64,${b64}`;
  const sliderAge = () => Number(el.age.value);
  const groupOf = (age) => groups.reduce((g, x) => (age >= x.from ? x.group : g), 0);
  const labelOf = (g) => (groups[g] ? groups[g].label : String(g));

  function setState(s) { document.body.dataset.state = s; }
  function status(text) { el.status.textContent = text; }
  function showError(text) { el.error.textContent = text; el.error.hidden = false; }
  function clearError() { el.error.textContent = ""; el.error.hidden = true; }
  function enable(on) {
    el.all.disabled = !on;
    el.downloadStrip.disabled = !on;
    el.download.classList.toggle("disabled", !on);
    el.download.setAttribute("aria-disabled", String(!on));
  }

  function showSlider() {
    const age = sliderAge();
    el.ageValue.textContent = String(age);
    el.group.textContent = `(group ${labelOf(groupOf(age))})`;
  }

  // POST /api/age for the current photo; resolves to the JSON answer or
  // throws an Error whose message is the server's words.
  async function ask(ages, withStrip) {
    const form = new FormData();
    form.append("photo", photo.file, photo.name);
    form.append("ages", ages);
    if (withStrip) form.append("strip", "true");
    let resp;
    try {
      resp = await fetch("/api/age", { method: "POST", body: form });
    } catch (e) {
      throw new Error(`Cannot reach the server: ${e.message}`);
    }
    let body = null;
    try { body = await resp.json(); } catch (_) { body = null; }
    if (!resp.ok) {
      const why = body && body.error ? body.error : resp.statusText;
      throw new Error(`The server refused the photo (HTTP ${resp.status}): ${why}`);
    }
    return body;
  }

  function drawBoxes(answer) {
    el.boxes.replaceChildren();
    answer.faces.forEach((f, i) => {
      const [x1, y1, x2, y2] = f.bbox;
      const box = document.createElement("div");
      box.className = "box";
      box.style.left = `${(100 * x1) / answer.width}%`;
      box.style.top = `${(100 * y1) / answer.height}%`;
      box.style.width = `${(100 * (x2 - x1)) / answer.width}%`;
      box.style.height = `${(100 * (y2 - y1)) / answer.height}%`;
      const tag = document.createElement("span");
      const est = f.estimated_age == null ? "" : ` · looks ${Math.round(f.estimated_age)}`;
      tag.textContent = `face ${i + 1}${est}`;
      box.append(tag);
      el.boxes.append(box);
    });
  }

  // Keeps what an answer brought; false when it found no face.
  function accept(answer) {
    drawBoxes(answer);
    if (!answer.faces.length) {
      showError(answer.message || "No face found in the photo.");
      setState("noface");
      status("");
      enable(false);
      return false;
    }
    for (const img of answer.images) {
      cache.set(img.group, { age: img.age, label: img.label, url: png(img.png_base64) });
    }
    if (answer.strip_png_base64) strip = png(answer.strip_png_base64);
    const n = answer.faces.length;
    el.beforeCaption.textContent = `before: ${photo.name} (${answer.width}×${answer.height}, ${n} face${n > 1 ? "s" : ""})`;
    enable(true);
    return true;
  }

  // Shows the cached image of the slider's group, if there is one.
  function display() {
    const age = sliderAge();
    const g = groupOf(age);
    const hit = cache.get(g);
    if (!hit) return false;
    el.after.onload = () => {
      if (el.after.dataset.group === String(g)) {
        setState("ready");
        status(`Aged to ${age} (group ${hit.label}).`);
      }
    };
    el.after.dataset.group = String(g);
    el.after.dataset.age = String(age);
    el.after.src = hit.url;
    el.afterCaption.textContent = `after: age ${age} (group ${hit.label})`;
    el.download.href = hit.url;
    el.download.download = `${photo.stem}_age${age}.png`;
    for (const img of el.grid.querySelectorAll("img")) {
      img.classList.toggle("current", img.dataset.group === String(g));
    }
    return true;
  }

  // Makes sure the slider's group is shown, asking the server when needed;
  // one request at a time, the latest wish wins.
  async function follow() {
    if (!photo || display()) return;
    wanted = groupOf(sliderAge());
    if (inflight === session) return;
    const mine = session;
    inflight = mine;
    setState("busy");
    try {
      while (wanted !== null && mine === session) {
        const g = wanted;
        wanted = null;
        if (cache.has(g)) continue;
        const age = groupOf(sliderAge()) === g ? sliderAge() : groups[g].centre;
        status(`Ageing to ${age} (group ${labelOf(g)})…`);
        const answer = await ask(String(age), false);
        if (mine !== session) return;
        if (!accept(answer)) return;
      }
      if (mine === session && !display()) setState("ready");
    } catch (e) {
      if (mine === session) {
        showError(e.message);
        setState("error");
        status("");
      }
    } finally {
      if (inflight === mine) inflight = null;
    }
  }

  async function allAges() {
    if (!photo) return;
    const mine = session;
    setState("busy");
    status("Ageing to every age group…");
    try {
      const answer = await ask("all", true);
      if (mine !== session || !accept(answer)) return;
      el.grid.replaceChildren();
      for (const x of groups) {
        const hit = cache.get(x.group);
        if (!hit) continue;
        const fig = document.createElement("figure");
        const img = document.createElement("img");
        img.src = hit.url;
        img.alt = `aged to group ${x.label}`;
        img.dataset.group = String(x.group);
        img.addEventListener("click", () => {
          el.age.value = String(Math.round(x.centre));
          showSlider();
          display();
        });
        const cap = document.createElement("figcaption");
        cap.textContent = x.label;
        fig.append(img, cap);
        el.grid.append(fig);
      }
      el.allAges.hidden = false;
      if (!display()) setState("ready");
    } catch (e) {
      if (mine === session) {
        showError(e.message);
        setState("error");
        status("");
      }
    }
  }

  async function downloadStrip() {
    if (!strip) await allAges();
    if (!strip) return;
    const a = document.createElement("a");
    a.href = strip;
    a.download = `${photo.stem}_strip.png`;
    document.body.append(a);
    a.click();
    a.remove();
  }

  function choose(file) {
    if (!file) return;
    session += 1;
    cache = new Map();
    strip = null;
    wanted = null;
    if (photo) URL.revokeObjectURL(photo.url);
    const name = file.name || "photo";
    photo = { file, name, stem: name.replace(/\.[^.]*$/, "") || "photo", url: URL.createObjectURL(file) };
    clearError();
    enable(false);
    el.boxes.replaceChildren();
    el.grid.replaceChildren();
    el.allAges.hidden = true;
    el.after.removeAttribute("src");
    delete el.after.dataset.group;
    delete el.after.dataset.age;
    el.afterCaption.textContent = "after";
    el.before.src = photo.url;
    el.beforeCaption.textContent = `before: ${name}`;
    follow();
  }

  el.before.addEventListener("error", () => el.before.removeAttribute("src"));
  el.file.addEventListener("change", () => choose(el.file.files[0]));
  el.age.addEventListener("input", () => { showSlider(); display(); });
  el.age.addEventListener("change", () => { showSlider(); follow(); });
  el.all.addEventListener("click", allAges);
  el.downloadStrip.addEventListener("click", downloadStrip);

  el.drop.addEventListener("dragover", (e) => { e.preventDefault(); el.drop.classList.add("over"); });
  el.drop.addEventListener("dragleave", () => el.drop.classList.remove("over"));
  el.drop.addEventListener("drop", (e) => {
    e.preventDefault();
    el.drop.classList.remove("over");
    choose(e.dataTransfer.files[0]);
  });
  el.drop.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") { e.preventDefault(); el.file.click(); }
  });
  // A photo dropped beside the zone must not replace the page.
  document.addEventListener("dragover", (e) => e.preventDefault());
  document.addEventListener("drop", (e) => e.preventDefault());

  el.age.disabled = false;
  showSlider();

  fetch("/api/version").then((r) => r.json()).then((v) => {
    if (Array.isArray(v.age_groups) && v.age_groups.length) groups = v.age_groups;
    el.version.textContent = `${v.name} ${v.version} on ${v.device}`;
    showSlider();
  }).catch(() => {});
  fetch("/api/health").then((r) => r.json()).then((h) => {
    const l = h.limits;
    el.limits.textContent =
      `Up to ${Math.floor(l.max_request_bytes / 1048576)} MiB and ` +
      `${(l.max_pixels / 1e6).toFixed(0)} megapixels; faces seen from the front, 40 px wide and up.`;
  }).catch(() => {});
})();
