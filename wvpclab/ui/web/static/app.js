// wvpclab's web page: the lab's picture kept live, WVPC's Settings dialog for each VM (its
// number of network adapters and each adapter's mode), and WVPC's Create Virtual Machine wizard.
// Looks at /api/state again as soon as the lab changes (or every half second); every request
// carries the page's token, every change is a POST.
"use strict";

const TOKEN = document.querySelector('meta[name="wvpclab-token"]').content;
const POLL_MS = 300;  // at most this often (a look that waited on the server goes again at once)

let state = null;          // the last /api/state
let pictureKey = null;     // which picture is shown
let chosenVm = null;       // the VM whose dialog is open
let pickedNic = null;      // a NIC clicked in the picture (highlighted in the dialog)
let dialogKey = null;      // what the dialog was built from
const messages = {};       // per NIC ("vm/n") or VM ("vm:NAME"): {text, kind} said under it
const inFlight = {};       // per NIC or VM: a change this page sent and awaits
let detailShown = null;    // the switch whose rules/leases are open

const $ = (sel) => document.querySelector(sel);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== false && v !== null && v !== undefined) node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) node.append(c);
  return node;
}

async function api(path, body) {
  const opts = body === undefined ? {headers: {"X-Wvpclab-Token": TOKEN}} : {
    method: "POST",
    headers: {"Content-Type": "application/json", "X-Wvpclab-Token": TOKEN},
    body: JSON.stringify(body),
  };
  let res;
  try {
    res = await fetch(path, opts);
  } catch (e) {
    throw new Error("the lab is not answering (was it stopped?)");
  }
  const type = res.headers.get("content-type") || "";
  if (!res.ok) {
    let why = `${res.status} ${res.statusText}`;
    if (type.includes("json")) why = (await res.json()).error || why;
    throw new Error(why);
  }
  return type.includes("json") ? res.json() : res;
}

// -- live values in words -----------------------------------------------------------------------
function duration(s) {
  if (s === null || s === undefined) return "";
  const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
  const pad = (n) => String(n).padStart(2, "0");
  return d ? `${d}d${pad(h)}h${pad(m)}m` : `${pad(h)}:${pad(m)}:${pad(Math.floor(s % 60))}`;
}

function isBusy(key) {  // a change of this NIC under way, from this page or anywhere
  return Boolean(state.busy[key] || inFlight[key]);
}

function isDown(nic, live) {  // a NIC that should have carrier and has none
  return nic.pluggable && (!nic.cable || Boolean(live && !live.carrier));
}

function nicWords(key, nic, live) {
  if (isBusy(key)) return "changing...";
  if (!live) return "";
  if (!nic.pluggable) return "not connected";
  if (!nic.cable) return "cable pulled: no carrier";
  const parts = [live.carrier ? "carrier" : "NO CARRIER", live.address || "no address"];
  if (live.lease_left !== null && live.lease_left !== undefined)
    parts.push("lease " + duration(live.lease_left));
  return parts.join("  ");
}

function count(n) {
  return n >= 1e6 ? (n / 1e6).toFixed(1) + "M" : n >= 1e4 ? Math.round(n / 1e3) + "k" : String(n);
}

// -- the picture --------------------------------------------------------------------------------
let pictureLoading = false;

async function showPicture() {
  if (state.picture === pictureKey || pictureLoading) return;
  pictureLoading = true;  // one at a time: an older picture never lands after a newer one
  let res, svg;
  try {
    res = await api("/api/picture.svg");
    svg = await res.text();
  } finally {
    pictureLoading = false;
  }
  const box = $("#picture");
  box.innerHTML = svg;  // Graphviz's SVG of the lab, escaped by Graphviz
  pictureKey = res.headers.get("X-Wvpclab-Picture");
  for (const a of box.querySelectorAll("a")) {
    const target = a.getAttribute("xlink:href") || a.getAttribute("href") || "";
    a.addEventListener("click", (ev) => {
      ev.preventDefault();
      if (target.startsWith("#nic:")) {
        const [vm, index] = target.slice(5).split(/\/(?=\d+$)/);
        pickedNic = `${vm}/${index}`;
        chooseVm(vm);
      } else if (target.startsWith("#switch:")) {
        showDetail(target.slice(8));
      }
    });
  }
}

function fillPicture() {
  for (const vm of state.vms) {
    for (const nic of vm.nics) {
      const key = `${vm.name}/${nic.index}`;
      const g = document.getElementById("a_nic:" + key);
      if (!g) continue;
      const texts = g.querySelectorAll("text");
      const row = texts[texts.length - 1];
      const live = state.nics[key];
      row.textContent = nicWords(key, nic, live);
      row.setAttribute("fill", isBusy(key) ? "#1f5fbf" : isDown(nic, live) ? "#b00000" : "#1b6e20");
    }
  }
  for (const [key, c] of Object.entries(state.switches_live)) {
    const g = document.getElementById("a_switch:" + key);
    if (!g) continue;
    const texts = g.querySelectorAll("text");
    texts[texts.length - 1].textContent = `${count(c.rx)} packets in, ${count(c.tx)} out`;
  }
}

// -- the Settings dialog ------------------------------------------------------------------------
function chooseVm(name) {
  if (chosenVm !== name) {
    chosenVm = name;
    dialogKey = null;
  }
  render();
  if (pickedNic) {
    const row = document.getElementById("nic-" + pickedNic);
    if (row) row.scrollIntoView({block: "nearest"});
  }
}

function renderVmList() {
  const nav = $("#vms");
  const names = state.vms.map((v) => v.name);
  if (nav.dataset.names !== names.join(" ")) {
    nav.replaceChildren(...names.map((n) => el("button", {type: "button", "data-vm": n, text: n,
                                                           onclick: () => { pickedNic = null; chooseVm(n); }})));
    nav.dataset.names = names.join(" ");
  }
  for (const b of nav.children) b.setAttribute("aria-current", String(b.dataset.vm === chosenVm));
}

function vmKey(name) { return "vm:" + name; }

function pl(n, word) { return `${n} ${word}${n === 1 ? "" : "s"}`; }

function buildDialog(vm) {
  const box = $("#dialog");
  const counts = [];
  if (vm.nics.length === 0 || vm.nics.length > state.max_nics)  // (a file may say so; WVPC does not)
    counts.push(el("option", {value: String(vm.nics.length), text: String(vm.nics.length), disabled: true}));
  for (let n = 1; n <= state.max_nics; n++) counts.push(el("option", {value: String(n), text: String(n)}));
  const adapters = el("select", {id: "adapters", name: "adapters",
                                 onchange: () => changeAdapters(vm.name, adapters)}, ...counts);
  adapters.value = String(vm.nics.length);
  const remove = el("button", {type: "button", class: "remove", name: "remove",
                               onclick: () => removeVm(vm.name)}, `Remove ${vm.name}...`);
  const rows = vm.nics.map((nic) => {
    const key = `${vm.name}/${nic.index}`;
    const select = el("select", {"aria-label": `${vm.name} network adapter ${nic.index + 1}`,
                                 name: "mode", onchange: () => changeMode(vm.name, nic.index, select)});
    const cable = el("input", {type: "checkbox", name: "cable",
                               onchange: () => changeCable(vm.name, nic.index, cable)});
    const capture = el("button", {type: "button", class: "capture", name: "capture",
                                  onclick: () => toggleCapture(vm.name, nic.index, capture)});
    return el("fieldset", {class: "nic", id: "nic-" + key, "data-nic": key},
      el("legend", {}, `Network adapter ${nic.index + 1} (eth${nic.index}) `,
         el("span", {class: "mac", text: nic.mac})),
      select,
      el("div", {class: "row"}, el("label", {}, cable, " cable connected"), capture),
      el("div", {class: "live", "data-live": ""}),
      el("div", {class: "msg", "data-msg": ""}));
  });
  box.replaceChildren(
    el("div", {class: "head"}, el("h2", {text: `${vm.name} Settings: Networking`}),
       el("p", {class: "sub", text: `virtual machine on ${vm.pc}; ${vm.nics.length} of ${state.max_nics} network adapters`
                                    + (vm.nics.length ? " (" + vm.nics.map((n) => "NIC " + n.index).join(", ") + ")" : "")}),
       remove),
    el("div", {class: "row count"}, el("label", {for: "adapters", text: "Number of network adapters:"}), adapters),
    el("div", {class: "msg", "data-vm-msg": ""}),
    vm.nics.length ? el("div", {class: "nics"}, ...rows) : el("p", {text: "This VM has no network adapters."}));
}

function vmBusy(vm) {  // a change of the whole VM under way: from this page, or from elsewhere
  if (inFlight[vmKey(vm.name)]) return {text: inFlight[vmKey(vm.name)], mine: true};
  const nics = new Set(vm.nics.map((n) => `${vm.name}/${n.index}`));
  const other = Object.entries(state.busy).find(([k]) => (k === vm.name || k.startsWith(vm.name + "/")) && !nics.has(k));
  return other ? {text: other[1], mine: false} : null;
}

function fillDialog(vm) {
  const busy = vmBusy(vm);
  const adapters = $("#adapters");
  if (adapters) {
    if (!busy && document.activeElement !== adapters) adapters.value = String(vm.nics.length);
    adapters.disabled = Boolean(busy);
  }
  const remove = $("#dialog button.remove");
  if (remove) remove.disabled = Boolean(busy);
  const vmMsg = $("#dialog [data-vm-msg]");
  if (vmMsg) {
    const said = busy ? {text: busy.mine ? busy.text : `changing (from the CLI or another page): ${busy.text}...`, kind: "busy"}
      : messages[vmKey(vm.name)] || {text: "", kind: ""};
    vmMsg.textContent = said.text;
    vmMsg.className = "msg " + said.kind;
  }
  for (const nic of vm.nics) {
    const key = `${vm.name}/${nic.index}`;
    const row = document.getElementById("nic-" + key);
    if (!row) continue;
    row.classList.toggle("picked", key === pickedNic);
    const select = row.querySelector("select");
    const busy = isBusy(key);
    const choices = state.choices[vm.pc] || [];
    const optKey = choices.map((c) => c.value + "=" + c.label).join("|");
    if (select.dataset.opts !== optKey && document.activeElement !== select) {
      select.replaceChildren(...choices.map((c) => el("option", {value: c.value, text: c.label})));
      select.dataset.opts = optKey;
    }
    if (!busy && document.activeElement !== select) select.value = nic.value;
    select.disabled = busy;
    const cable = row.querySelector('input[name="cable"]');
    cable.checked = nic.cable;
    cable.disabled = busy || !nic.pluggable;
    const capture = row.querySelector("button.capture");
    const capturing = state.captures.includes(key);
    capture.textContent = capturing ? "stop capture and download" : "capture";
    capture.dataset.capturing = String(capturing);
    const live = state.nics[key];
    const liveBox = row.querySelector("[data-live]");
    liveBox.replaceChildren(el("span", {class: isDown(nic, live) ? "down" : "up",
                                        text: nicWords(key, nic, live)}));
    const msg = row.querySelector("[data-msg]");
    const said = inFlight[key] ? {text: inFlight[key], kind: "busy"}
      : state.busy[key] ? {text: `changing (from the CLI or another page): ${state.busy[key]}...`, kind: "busy"}
      : messages[key] || {text: "", kind: ""};
    msg.textContent = said.text;
    msg.className = "msg " + said.kind;
  }
}

function forgetGone() {  // what was said about NICs and VMs the lab no longer has
  const here = new Set(state.vms.flatMap((v) => [vmKey(v.name), ...v.nics.map((n) => `${v.name}/${n.index}`)]));
  for (const key of Object.keys(messages)) if (!here.has(key) && !inFlight[key]) delete messages[key];
}

function render() {
  if (!state) return;
  forgetGone();
  $("#title").textContent = `wvpclab: lab ${state.lab}`;
  document.title = `${state.lab} - wvpclab`;
  if (!chosenVm || !state.vms.some((v) => v.name === chosenVm)) chosenVm = state.vms.length ? state.vms[0].name : null;
  renderVmList();
  const vm = state.vms.find((v) => v.name === chosenVm);
  if (!vm) { $("#dialog").replaceChildren(el("p", {text: "This lab has no VMs."})); return; }
  const key = vm.name + ":" + vm.nics.map((n) => n.index).join(",");
  if (dialogKey !== key) {  // rebuilt: the keyboard's place kept where it can be
    const focused = document.activeElement && $("#dialog").contains(document.activeElement)
      ? (document.activeElement.id ? "#" + document.activeElement.id : null) : null;
    buildDialog(vm);
    dialogKey = key;
    if (focused && $(focused)) $(focused).focus();
  }
  fillDialog(vm);
  if ($("#new-vm-dialog").open) fillNewVm();
}

async function change(key, busyText, path, body, done) {
  inFlight[key] = busyText;
  delete messages[key];
  render(); fillPicture();
  try {
    const r = await api(path, body);
    messages[key] = {text: done(r), kind: "done"};
  } catch (e) {
    messages[key] = {text: e.message, kind: "error"};
  } finally {
    delete inFlight[key];
    await refresh(true);
  }
}

function changeMode(vm, index, select) {
  let mode = select.value;
  let what = select.selectedOptions[0].textContent;
  const vmState = state.vms.find((v) => v.name === vm);
  const choice = (state.choices[vmState.pc] || []).find((c) => c.value === mode);
  if (choice && choice.ask) {  // a choice that asks for a name (a new internal network)
    const name = window.prompt(choice.ask, "");
    if (!name) { select.value = vmState.nics.find((n) => n.index === index).value; return; }
    mode = choice.value + name.trim();
    what = choice.names + " " + name.trim();
  }
  change(`${vm}/${index}`, `changing to ${what}: `
              + "moving the cable, then waiting for the guest to hold its address...",
         "/api/nic", {vm, index, mode},
         (r) => (r.changed ? `now ${r.label}` : `already ${r.label}: nothing changed`)
                + (r.address ? `, address ${r.address}` : ""));
}

function changeCable(vm, index, box) {
  const plugged = box.checked;
  change(`${vm}/${index}`, plugged ? "plugging the cable in..." : "pulling the cable out...",
         "/api/cable", {vm, index, plugged},
         (r) => (r.cable ? "cable plugged in" : "cable pulled out: the guest sees no carrier")
                + (r.cable && r.address ? `, address ${r.address}` : ""));
}

function changeAdapters(vm, select) {
  const count = Number(select.value);
  const now = state.vms.find((v) => v.name === vm).nics.length;
  change(vmKey(vm), count > now ? `adding ${pl(count - now, "network adapter")} (Not connected)...`
                                : `removing ${pl(now - count, "network adapter")} (the highest-numbered)...`,
         "/api/adapters", {vm, count},
         (r) => `${pl(r.nics.length, "network adapter")}: ` + r.nics.map((n) => `NIC ${n.index} ${n.label}`).join(", "))
    .then(() => {  // the box shows the count the lab has now; the keyboard stays on it
      const box = $("#adapters"), shown = state.vms.find((v) => v.name === vm);
      if (!box || !shown || chosenVm !== vm) return;
      box.value = String(shown.nics.length);
      if (!document.activeElement || document.activeElement === document.body) box.focus();
    });
}

async function removeVm(vm) {
  if (!window.confirm(`Remove the virtual machine ${vm}? Its guest is shut down and its addresses released.`)) return;
  const key = vmKey(vm);
  inFlight[key] = `removing ${vm}...`;
  delete messages[key];
  render();
  try {
    await api("/api/vm/remove", {vm});
    vmNote(`${vm} was removed`, "done");
    if (chosenVm === vm) chosenVm = null;
  } catch (e) {
    messages[key] = {text: e.message, kind: "error"};
  } finally {
    delete inFlight[key];
    await refresh(true);
  }
}

function vmNote(text, kind) {  // said above the dialog: about VMs made or gone
  const note = $("#vm-note");
  note.textContent = text;
  note.className = "msg " + kind;
}

// -- WVPC's Create Virtual Machine wizard -------------------------------------------------------
let creating = false;

function newVmPc() {
  const pcs = state.pcs || [];
  return pcs.length === 1 ? pcs[0] : pcs.find((p) => p.name === $("#new-vm-pc").value) || pcs[0];
}

function fillNewVm() {
  const pcs = state.pcs || [];
  const select = $("#new-vm-pc");
  const names = pcs.map((p) => p.name).join(" ");
  if (select.dataset.names !== names) {
    const was = select.value;
    select.replaceChildren(...pcs.map((p) => el("option", {value: p.name, text: p.name})));
    if (pcs.some((p) => p.name === was)) select.value = was;
    select.dataset.names = names;
  }
  $("#new-vm-pc-row").hidden = pcs.length < 2;
  const pc = newVmPc();
  $("#new-vm-on").textContent = pc ? (pcs.length < 2 ? `on ${pc.name}, the lab's PC` : "") : "The lab has no PC to run a VM on.";
  const items = pc ? pc.wizard.map((w, i) => el("li", {"data-value": w.value},
    `Network adapter ${i + 1} (eth${i}): `, el("strong", {text: w.choice}))) : [];
  const list = $("#new-vm-nics");
  const key = items.map((li) => li.textContent).join("|");
  if (list.dataset.key !== key) { list.replaceChildren(...items); list.dataset.key = key; }
}

function newVmSay(text, kind) {
  const msg = $("#new-vm-msg");
  msg.textContent = text;
  msg.className = "msg " + kind;
}

function openNewVm() {
  if (!state) return;
  fillNewVm();
  newVmSay("", "");
  $("#new-vm-name").value = "";
  $("#new-vm-dialog").showModal();
  $("#new-vm-name").focus();
}

async function createVm(ev) {
  ev.preventDefault();
  if (creating) return;
  const name = $("#new-vm-name").value.trim();
  if (!name) { newVmSay("Give the new virtual machine a name.", "error"); $("#new-vm-name").focus(); return; }
  const body = {name};
  if ((state.pcs || []).length > 1) body.pc = $("#new-vm-pc").value;
  creating = true;
  for (const b of ["#new-vm-create", "#new-vm-cancel"]) $(b).disabled = true;
  newVmSay(`creating ${name}: starting its guest, then waiting for its addresses...`, "busy");
  try {
    const r = await api("/api/vm/add", body);
    $("#new-vm-dialog").close();
    chosenVm = r.vm;
    pickedNic = null;
    dialogKey = null;
    const nics = r.nics.map((n) => `NIC ${n.index} ${n.label}` + (n.address ? ` (${n.address})` : ""));
    vmNote(`${r.vm} was created on ${r.pc}` + (nics.length ? ": " + nics.join(", ") : ", with no network adapters"), "done");
  } catch (e) {
    newVmSay(e.message, "error");
    $("#new-vm-name").focus();
  } finally {
    creating = false;
    for (const b of ["#new-vm-create", "#new-vm-cancel"]) $(b).disabled = false;
    await refresh(true);
  }
}

async function toggleCapture(vm, index, button) {
  const key = `${vm}/${index}`;
  const stopping = button.dataset.capturing === "true";
  button.disabled = true;
  try {
    if (!stopping) {
      await api("/api/capture", {vm, index, action: "start"});
      messages[key] = {text: "capturing: what crosses this NIC from now on", kind: "done"};
    } else {
      const res = await api("/api/capture", {vm, index, action: "stop"});
      const blob = await res.blob();
      const link = el("a", {href: URL.createObjectURL(blob), download: `capture-${vm}-eth${index}.pcap`});
      document.body.append(link);
      link.click();
      link.remove();
      messages[key] = {text: `capture saved (${blob.size} bytes, pcap: open it in Wireshark)`, kind: "done"};
    }
  } catch (e) {
    messages[key] = {text: e.message, kind: "error"};
  } finally {
    button.disabled = false;
    await refresh(true);
  }
}

// -- a switch's rules and leases ----------------------------------------------------------------
async function showDetail(key) {
  const sw = state.switches.find((s) => s.key === key);
  if (!sw) return;
  detailShown = key;
  $("#detail").hidden = false;
  $("#detail-title").textContent = `${sw.kind} switch ${key}`;
  const body = $("#detail-body");
  body.replaceChildren(el("p", {class: "sub", text: "reading..."}));
  const parts = [];
  const c = state.switches_live[key];
  if (c) parts.push(el("p", {class: "sub", text: `${c.rx} packets in from its ports, ${c.tx} out to them`}));
  try {
    if (sw.rules) {
      const r = await api("/api/rules?switch=" + encodeURIComponent(key));
      parts.push(el("h3", {text: "Its rules, in words"}), el("pre", {text: r.rules.join("\n")}));
    }
    if (sw.leases) {
      const r = await api("/api/leases?network=" + encodeURIComponent(key));
      const head = el("tr", {}, ...["address", "MAC", "state", "left", "hostname"].map((h) => el("th", {text: h})));
      const rows = r.leases.map((l) => el("tr", {}, ...[l.ip, l.mac, l.state, duration(l.remaining), l.hostname || "-"]
        .map((v) => el("td", {text: String(v)}))));
      parts.push(el("h3", {text: `DHCP leases (${r.leases.length})`}), el("table", {}, head, ...rows));
    }
    if (!sw.rules && !sw.leases) parts.push(el("p", {text: "A plain learning switch: no rules of the lab's, no DHCP server."}));
  } catch (e) {
    parts.push(el("p", {class: "msg error", text: e.message}));
  }
  if (detailShown === key) body.replaceChildren(...parts);
}

// -- the loop -----------------------------------------------------------------------------------
function setStatus(text, bad = false) {
  const s = $("#status");
  s.textContent = text;
  s.classList.toggle("bad", bad);
}

async function refresh(force = false) {
  try {
    const since = state && !force ? `?since=${state.generation}` : "";
    state = await api("/api/state" + since);
    await showPicture();
    fillPicture();
    render();
    const n = (k, word) => `${k} ${word}${k === 1 ? "" : "s"}`;
    setStatus(`live: ${n(state.vms.length, "VM")}, ${n(Object.keys(state.nics).length, "NIC")}; `
              + `updated ${new Date(state.time * 1000).toLocaleTimeString()}`);
  } catch (e) {
    setStatus(e.message, true);
  }
}

async function loop() {  // each look waits on the server for a change (or half a second)
  const t0 = Date.now();
  await refresh();
  setTimeout(loop, Math.max(0, POLL_MS - (Date.now() - t0)));
}

$("#zoom").addEventListener("click", () => {
  const fit = $("#picture").classList.toggle("fit");
  $("#zoom").textContent = fit ? "full size" : "fit to window";
});
$("#picture").classList.add("fit");
$("#detail-close").addEventListener("click", () => { $("#detail").hidden = true; detailShown = null; });
$("#new-vm").addEventListener("click", openNewVm);
$("#new-vm-form").addEventListener("submit", createVm);
$("#new-vm-cancel").addEventListener("click", () => $("#new-vm-dialog").close());
$("#new-vm-dialog").addEventListener("cancel", (ev) => { if (creating) ev.preventDefault(); });
$("#new-vm-pc").addEventListener("change", fillNewVm);
loop();
