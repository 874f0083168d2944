// A real OpenID Connect provider (oidc-provider 9) on loopback, standing in
// for the Fedora account system in webhook2fedmsg's login tests.
//
// It listens on 127.0.0.1 (port $PORT, default any free one) and prints one
// JSON line to stdout once ready: {"issuer": "http://127.0.0.1:PORT"}.
//
// - One client, $CLIENT_ID / $CLIENT_SECRET (client_secret_basic), registered
//   as a native application so that its loopback redirect URI
//   http://127.0.0.1/login/callback is accepted on any port. PKCE (S256) is
//   required of it.
// - Two accounts, like FAS ones: alice (in the admin group "sysadmin-main")
//   and bob. The claims are FAS's: sub, nickname, preferred_username,
//   email, and groups under the scope https://id.fedoraproject.org/scope/groups.
// - The login page is a plain form at /interaction/:uid asking for the
//   username (no password: these are test accounts); consent is granted at
//   once.
// - POST /test/access-token with `account=NAME` mints a real access token
//   for that account, as if it had logged in through this client, for the
//   tests of `Authorization: Bearer <access token>`.
// - With EXIT_ON_STDIN_CLOSE set, it exits when its stdin closes.
import { generateKeyPairSync } from "node:crypto";
import { createServer } from "node:http";

import Provider from "oidc-provider";

const GROUPS_SCOPE = "https://id.fedoraproject.org/scope/groups";
const CLIENT_ID = process.env.CLIENT_ID ?? "webhook2fedmsg";
const CLIENT_SECRET = process.env.CLIENT_SECRET ?? "test-client-secret";

const ACCOUNTS = {
  alice: { email: "alice@example.org", groups: ["packager", "sysadmin-main"] },
  bob: { email: "bob@example.org", groups: ["packager"] },
};

function findAccount(_ctx, id) {
  const account = ACCOUNTS[id];
  if (!account) {
    return undefined;
  }
  return {
    accountId: id,
    async claims() {
      return {
        sub: id,
        nickname: id,
        preferred_username: id,
        email: account.email,
        email_verified: true,
        groups: account.groups,
      };
    },
  };
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function loginPage(uid, message) {
  const note = message ? `<p role="alert">${escapeHtml(message)}</p>` : "";
  return `<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Test provider: log in</title></head><body>
<h1>Test OpenID Connect provider</h1>${note}
<form method="post" action="/interaction/${escapeHtml(uid)}">
<label>Username <input name="login" autofocus></label>
<button type="submit">Log in</button></form></body></html>`;
}

async function readForm(req) {
  let body = "";
  for await (const chunk of req) {
    body += chunk;
    if (body.length > 16384) {
      throw new Error("form too large");
    }
  }
  return new URLSearchParams(body);
}

// Grants what the authorization request asked for: the consent step.
async function grantAll(provider, interaction) {
  const { prompt, params, session } = interaction;
  const grant = interaction.grantId
    ? await provider.Grant.find(interaction.grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  const details = prompt.details;
  if (details.missingOIDCScope) {
    grant.addOIDCScope(details.missingOIDCScope.join(" "));
  }
  if (details.missingOIDCClaims) {
    grant.addOIDCClaims(details.missingOIDCClaims);
  }
  for (const [indicator, scopes] of Object.entries(details.missingResourceScopes ?? {})) {
    grant.addResourceScope(indicator, scopes.join(" "));
  }
  return grant.save();
}

async function interaction(provider, req, res, uid) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) {
    throw new Error("interaction mismatch");
  }
  if (details.prompt.name === "consent") {
    const grantId = await grantAll(provider, details);
    await provider.interactionFinished(req, res, { consent: { grantId } }, {
      mergeWithLastSubmission: true,
    });
    return;
  }
  if (req.method === "GET") {
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end(loginPage(uid));
    return;
  }
  const login = (await readForm(req)).get("login") ?? "";
  if (!ACCOUNTS[login]) {
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end(loginPage(uid, `no account ${login}`));
    return;
  }
  await provider.interactionFinished(req, res, { login: { accountId: login } }, {
    mergeWithLastSubmission: false,
  });
}

async function mintAccessToken(provider, req, res) {
  const account = (await readForm(req)).get("account") ?? "";
  if (!ACCOUNTS[account]) {
    res.writeHead(404, { "content-type": "text/plain" });
    res.end("no such account");
    return;
  }
  const scope = `openid profile email ${GROUPS_SCOPE}`;
  const grant = new provider.Grant({ accountId: account, clientId: CLIENT_ID });
  grant.addOIDCScope(scope);
  const grantId = await grant.save();
  const client = await provider.Client.find(CLIENT_ID);
  const token = new provider.AccessToken({
    accountId: account,
    client,
    grantId,
    scope,
    gty: "authorization_code",
  });
  const value = await token.save();
  res.writeHead(200, { "content-type": "application/json" });
  res.end(JSON.stringify({ access_token: value }));
}

// Run by a test, the provider stops when the test process does: its end of
// our stdin closes then.
if (process.env.EXIT_ON_STDIN_CLOSE) {
  process.stdin.on("end", () => process.exit(0));
  process.stdin.resume();
}

const server = createServer();
server.listen(Number(process.env.PORT ?? 0), "127.0.0.1", () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const jwk = { ...privateKey.export({ format: "jwk" }), kid: "test", use: "sig", alg: "RS256" };

  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: CLIENT_ID,
        client_secret: CLIENT_SECRET,
        application_type: "native",
        redirect_uris: ["http://127.0.0.1/login/callback"],
        grant_types: ["authorization_code"],
        response_types: ["code"],
        token_endpoint_auth_method: "client_secret_basic",
      },
    ],
    jwks: { keys: [jwk] },
    findAccount,
    scopes: ["openid", "profile", "email", GROUPS_SCOPE],
    claims: {
      openid: ["sub"],
      profile: ["nickname", "preferred_username"],
      email: ["email", "email_verified"],
      [GROUPS_SCOPE]: ["groups"],
    },
    pkce: { required: () => true },
    features: { devInteractions: { enabled: false } },
    interactions: { url: (_ctx, found) => `/interaction/${found.uid}` },
    cookies: { keys: ["test-provider-cookie-key"] },
    ttl: {
      AccessToken: 3600,
      AuthorizationCode: 60,
      Grant: 3600,
      IdToken: 3600,
      Interaction: 600,
      Session: 3600,
    },
  });
  provider.on("server_error", (_ctx, error) => console.error("server_error", error));

  const callback = provider.callback();
  server.on("request", (req, res) => {
    const path = new URL(req.url, issuer).pathname;
    const match = /^\/interaction\/([^/]+)$/.exec(path);
    let work;
    if (match) {
      work = interaction(provider, req, res, match[1]);
    } else if (path === "/test/access-token" && req.method === "POST") {
      work = mintAccessToken(provider, req, res);
    } else {
      callback(req, res);
      return;
    }
    work.catch((error) => {
      console.error(error);
      if (!res.headersSent) {
        res.writeHead(400, { "content-type": "text/plain" });
      }
      res.end(String(error.message ?? error));
    });
  });
  process.stdout.write(`${JSON.stringify({ issuer })}\n`);
});
