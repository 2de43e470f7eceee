// The dashboard's only script. Every change it makes is a call to the
// admin API, with the session cookie and this page's CSRF token; the page
// never holds a token, and a new key lives only in the dialog that shows it.
"use strict";

const csrf = document.querySelector('meta[name="csrf-token"]')?.content ?? "";

async function api(method, path, body) {
  const init = { method, headers: { "X-CSRF-Token": csrf }, credentials: "same-origin" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) {
    throw new Error(data?.error?.message ?? `The server answered ${response.status}`);
  }
  return data;
}

function closeOnCancel(dialog) {
  dialog.querySelectorAll("[data-close]").forEach((b) => b.addEventListener("click", () => dialog.close()));
}

function showError(el, error) {
  el.textContent = error.message;
  el.hidden = false;
}

// The key dialog: the key is written into it, and wiped when it closes.
const keyDialog = document.getElementById("key-dialog");
function showKey(key) {
  document.getElementById("new-key").textContent = key;
  document.getElementById("copied").textContent = "";
  keyDialog.showModal();
}
if (keyDialog) {
  document.getElementById("copy-key").addEventListener("click", async () => {
    await navigator.clipboard.writeText(document.getElementById("new-key").textContent);
    document.getElementById("copied").textContent = "Copied";
  });
  document.getElementById("close-key").addEventListener("click", () => keyDialog.close());
  keyDialog.addEventListener("close", () => {
    document.getElementById("new-key").textContent = "";
    // Reloading the same URL adds no history entry, and the key was never in one.
    location.replace(location.pathname);
  });
}

const createDialog = document.getElementById("create-dialog");
if (createDialog) {
  closeOnCancel(createDialog);
  const form = document.getElementById("create-form");
  document.getElementById("open-create").addEventListener("click", () => {
    form.reset();
    document.getElementById("create-error").hidden = true;
    createDialog.showModal();
  });
  // "For a widget" ticks chat only.
  document.getElementById("for-widget").addEventListener("change", (e) => {
    form.querySelectorAll('input[name="scope"]').forEach((box) => {
      box.checked = e.target.checked && box.value === "chat";
      box.disabled = e.target.checked;
    });
  });
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = { name: form.elements.name.value, mode: form.elements.mode.value };
    body.scopes = [...form.querySelectorAll('input[name="scope"]:checked')].map((b) => b.value);
    if (form.elements.expires.value) {
      body.expiresAt = `${form.elements.expires.value}T23:59:59Z`;
    }
    const limits = {};
    form.querySelectorAll('input[name="limit"]').forEach((input) => {
      if (input.value) limits[input.dataset.class] = Number(input.value);
    });
    if (Object.keys(limits).length) body.rateLimits = limits;
    const networks = networkList(form.elements.networks.value);
    if (networks.length) body.allowedNetworks = networks;
    if (form.elements.credits.value !== "") body.credits = creditsOf(form);
    try {
      const created = await api("POST", `/api/admin/orgs/${form.dataset.org}/keys`, body);
      createDialog.close();
      showKey(created.key);
    } catch (error) {
      showError(document.getElementById("create-error"), error);
    }
  });
}

function networkList(text) {
  return text.split(/[\s,]+/).filter((n) => n);
}

// Credits from a form's `credits`, `refill` and `refillEvery` fields.
function creditsOf(form) {
  const credits = { remaining: Number(form.elements.credits.value || 0) };
  const every = form.elements.refillEvery.value;
  if (every) {
    credits.refill = { amount: Number(form.elements.refill.value || 0), intervalSeconds: Number(every) };
  }
  return credits;
}

const limitsDialog = document.getElementById("limits-dialog");
if (limitsDialog) {
  closeOnCancel(limitsDialog);
  const form = document.getElementById("limits-form");
  document.querySelectorAll("[data-limits]").forEach((button) =>
    button.addEventListener("click", () => {
      form.reset();
      form.dataset.key = button.dataset.limits;
      form.elements.networks.value = button.dataset.networks;
      document.getElementById("limits-error").hidden = true;
      limitsDialog.showModal();
    }),
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = { allowedNetworks: networkList(form.elements.networks.value) };
    const mode = form.elements.creditsMode.value;
    if (mode === "set") body.credits = creditsOf(form);
    if (mode === "none") body.credits = null;
    try {
      await api("PATCH", `/api/admin/orgs/${form.dataset.org}/keys/${form.dataset.key}`, body);
      limitsDialog.close();
      location.replace(location.pathname);
    } catch (error) {
      showError(document.getElementById("limits-error"), error);
    }
  });
}

// A leak report: the pasted text is sent once and wiped from the page at
// once; the answer names keys by their display prefix only.
const leakForm = document.getElementById("leak-form");
if (leakForm) {
  leakForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    const text = leakForm.elements.text.value;
    leakForm.elements.text.value = "";
    const list = document.getElementById("leak-result");
    list.replaceChildren();
    try {
      const result = await api("POST", `/api/admin/orgs/${leakForm.dataset.org}/leaks`, { text });
      if (!result.keys.length) {
        list.append(Object.assign(document.createElement("li"), { textContent: "No keys found" }));
      }
      for (const k of result.keys) {
        list.append(Object.assign(document.createElement("li"), { textContent: `${k.prefix}: ${k.standing}` }));
        if (k.standing === "revoked") document.querySelector(`tr[data-key-id="${k.keyId}"]`)?.remove();
      }
    } catch (error) {
      list.append(Object.assign(document.createElement("li"), { textContent: error.message }));
    }
  });
}

const rollDialog = document.getElementById("roll-dialog");
if (rollDialog) {
  closeOnCancel(rollDialog);
  const form = document.getElementById("roll-form");
  document.querySelectorAll("[data-roll]").forEach((button) =>
    button.addEventListener("click", () => {
      form.dataset.key = button.dataset.roll;
      document.getElementById("roll-error").hidden = true;
      rollDialog.showModal();
    }),
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = { gracePeriodSeconds: Number(form.elements.grace.value) };
    try {
      const rolled = await api("POST", `/api/admin/orgs/${form.dataset.org}/keys/${form.dataset.key}/roll`, body);
      rollDialog.close();
      showKey(rolled.key);
    } catch (error) {
      showError(document.getElementById("roll-error"), error);
    }
  });
}

document.querySelectorAll("[data-delete]").forEach((button) =>
  button.addEventListener("click", async () => {
    const org = document.getElementById("create-form").dataset.org;
    if (!confirm(`Delete the key "${button.dataset.name}"? Requests with it will be refused at once.`)) return;
    try {
      await api("DELETE", `/api/admin/orgs/${org}/keys/${button.dataset.delete}`);
      button.closest("tr").remove();
    } catch (error) {
      alert(error.message);
    }
  }),
);

document.querySelectorAll("form.domains").forEach((form) =>
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const status = form.querySelector('[role="status"]');
    const allowedDomains = form.elements.domains.value.split(",").map((d) => d.trim()).filter((d) => d);
    try {
      await api("PATCH", `/api/admin/orgs/${form.dataset.org}/agents/${form.dataset.agent}`, { allowedDomains });
      status.textContent = "Saved";
    } catch (error) {
      status.textContent = error.message;
    }
  }),
);
