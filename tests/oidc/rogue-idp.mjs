// A deliberately misbehaving OpenID provider for Gatehouse's negative tests. It is a real
// peer over HTTP (discovery, JWKS, authorize, token), but mints ID tokens that are wrong in
// one chosen way, so the gateway's checks can be seen to refuse them.
//
//   node tests/oidc/rogue-idp.mjs PORT CLIENT_ID
//
// `GET /mode?m=MODE` picks the next tokens' flaw: ok, wrong-aud, wrong-iss, expired,
// future-iat, nbf-future, bad-sig, unknown-kid, wrong-nonce. Prints `ready` once listening.
import http from 'node:http';
import { SignJWT, generateKeyPair, exportJWK } from 'jose';

const [port, clientId] = process.argv.slice(2);
const issuer = `http://127.0.0.1:${port}`;
const good = await generateKeyPair('RS256', { extractable: true });
const other = await generateKeyPair('RS256', { extractable: true });
const publicJwk = { ...(await exportJWK(good.publicKey)), kid: 'good', alg: 'RS256', use: 'sig' };

let mode = 'ok';
const codes = new Map(); // code -> nonce

async function idToken(nonce) {
  const now = Math.floor(Date.now() / 1000);
  const claims = {
    email: 'mallory@example.com',
    email_verified: true,
    groups: ['engineers'],
    nonce: mode === 'wrong-nonce' ? 'not-the-nonce' : nonce,
  };
  let key = good.privateKey;
  let kid = 'good';
  if (mode === 'bad-sig') key = other.privateKey; // claims to be `good`, is not
  if (mode === 'unknown-kid') { key = other.privateKey; kid = 'rotated-away'; }
  const iat = mode === 'future-iat' ? now + 3600 : mode === 'expired' ? now - 7200 : now;
  const exp = mode === 'expired' ? now - 3600 : now + 300;
  const jwt = new SignJWT(claims)
    .setProtectedHeader({ alg: 'RS256', kid })
    .setIssuer(mode === 'wrong-iss' ? 'https://evil.example.com' : issuer)
    .setAudience(mode === 'wrong-aud' ? 'some-other-client' : clientId)
    .setSubject('mallory')
    .setIssuedAt(iat)
    .setExpirationTime(exp);
  if (mode === 'nbf-future') jwt.setNotBefore(now + 3600);
  return jwt.sign(key);
}

function json(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

http.createServer(async (req, res) => {
  const url = new URL(req.url, issuer);
  try {
    if (url.pathname === '/.well-known/openid-configuration') {
      return json(res, 200, {
        issuer,
        authorization_endpoint: `${issuer}/authorize`,
        token_endpoint: `${issuer}/token`,
        jwks_uri: `${issuer}/jwks`,
        response_types_supported: ['code'],
        subject_types_supported: ['public'],
        id_token_signing_alg_values_supported: ['RS256'],
      });
    }
    if (url.pathname === '/jwks') return json(res, 200, { keys: [publicJwk] });
    if (url.pathname === '/mode') {
      mode = url.searchParams.get('m') ?? 'ok';
      return json(res, 200, { mode });
    }
    if (url.pathname === '/authorize') {
      const code = `code-${Math.random().toString(36).slice(2)}`;
      codes.set(code, url.searchParams.get('nonce'));
      const back = new URL(url.searchParams.get('redirect_uri'));
      back.searchParams.set('code', code);
      back.searchParams.set('state', url.searchParams.get('state'));
      res.writeHead(302, { location: back.toString() });
      return res.end();
    }
    if (url.pathname === '/token' && req.method === 'POST') {
      let body = '';
      for await (const chunk of req) body += chunk;
      const code = new URLSearchParams(body).get('code');
      if (!codes.has(code)) return json(res, 400, { error: 'invalid_grant' });
      const nonce = codes.get(code);
      codes.delete(code);
      return json(res, 200, {
        access_token: 'at-' + code,
        token_type: 'Bearer',
        expires_in: 300,
        id_token: await idToken(nonce),
      });
    }
    json(res, 404, { error: 'not_found' });
  } catch (e) {
    console.error(e);
    json(res, 500, { error: 'server_error' });
  }
}).listen(Number(port), '127.0.0.1', () => console.log('ready'));
