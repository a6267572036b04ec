// A real OAuth 2.0 / OpenID Connect server (oidc-provider) for Tidings' tests, on 127.0.0.1.
// Usage: node oidc_server.mjs REDIRECT_URI [ACCESS_TOKEN_TTL_SECONDS]
// Prints `READY <port>` once listening. One confidential client, `tidings`, secret `tidings-secret`, with the
// authorization-code (PKCE S256 required), refresh-token and device-code grants. The development login and
// consent forms accept any login.
import Provider from 'oidc-provider';

const redirectUri = process.argv[2];
const ttl = Number(process.argv[3] || 3600);
const provider = new Provider('http://127.0.0.1', {
  clients: [{
    client_id: 'tidings',
    client_secret: 'tidings-secret',
    redirect_uris: [redirectUri],
    grant_types: ['authorization_code', 'refresh_token', 'urn:ietf:params:oauth:grant-type:device_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_post',
  }],
  features: { deviceFlow: { enabled: true }, devInteractions: { enabled: true } },
  pkce: { required: () => true },
  scopes: ['openid', 'offline_access', 'smtp'],
  issueRefreshToken: async () => true,
  ttl: { AccessToken: ttl },
  rotateRefreshToken: true,
});
provider.proxy = false;
const server = provider.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  console.log(`READY ${port}`);
});
