// A real OpenID provider for Gatehouse's end-to-end tests: npm `oidc-provider` with its
// development login and consent pages, one confidential client (the gateway) and a few users
// with a `groups` claim.
//
//   node tests/oidc/provider.mjs PORT GATEWAY_CALLBACK_URL CLIENT_SECRET
//
// Prints `ready` on stdout once it listens on 127.0.0.1:PORT. Any login name with any password
// signs in; the names below carry groups, others get none.
import { generateKeyPair, exportJWK } from 'jose';
import Provider from 'oidc-provider';

const [port, callback, secret] = process.argv.slice(2);
if (!port || !callback || !secret) {
  console.error('usage: provider.mjs PORT GATEWAY_CALLBACK_URL CLIENT_SECRET');
  process.exit(2);
}

const USERS = {
  alice: { groups: ['engineers'], name: 'Alice Example' },
  root: { groups: ['admins'], name: 'Root Example' },
  nogrant: { groups: ['visitors'], name: 'No Grant' },
};

const { privateKey } = await generateKeyPair('RS256', { extractable: true });
const jwk = { ...(await exportJWK(privateKey)), kid: 'test-key-1', alg: 'RS256', use: 'sig' };

const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [
    {
      client_id: 'gatehouse',
      client_secret: secret,
      redirect_uris: [callback],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  async findAccount(ctx, id) {
    const user = USERS[id] ?? { groups: [], name: id };
    return {
      accountId: id,
      async claims() {
        return {
          sub: id,
          email: `${id}@example.com`,
          email_verified: true,
          name: user.name,
          preferred_username: id,
          groups: user.groups,
        };
      },
    };
  },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
    groups: ['groups'],
  },
  scopes: ['openid', 'email', 'profile', 'groups'],
  // Put the scope's claims in the ID token itself, as Okta/Entra/Keycloak can be configured to.
  conformIdTokenClaims: false,
  jwks: { keys: [jwk] },
  cookies: { keys: ['gatehouse-test-cookie-key'] },
  features: { devInteractions: { enabled: true } },
  pkce: { required: () => true },
});
// Plain HTTP on loopback: tell the provider not to insist on TLS for its cookies.
provider.proxy = true;
provider.on('server_error', (ctx, err) => console.error('server_error', err));

provider.listen(Number(port), '127.0.0.1', () => {
  console.log('ready');
});
