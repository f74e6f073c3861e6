// Verifies a Twofold access token as a Node.js resource server would, with the `jose`
// package and nothing of Twofold's: the keys come from the JWKS endpoint alone.
//
//   node verify.mjs JWKS_URL ISSUER AUDIENCE TOKEN [NOW]
//
// NOW (seconds since the epoch) is the verifier's clock; the tests pass their server's
// frozen clock, which need not agree with the wall clock. Without it, the real time.
//
// Exit 0: the verified payload as JSON on stdout. Exit 1: jose's error code (such as
// ERR_JWS_SIGNATURE_VERIFICATION_FAILED) on stdout, its message on stderr. Exit 2: misuse.

import { webcrypto } from "node:crypto";

// jose needs the Web Crypto global, which Node.js 18 (Debian's) has only behind a flag.
globalThis.crypto ??= webcrypto;

// The two entry points only: loading all of jose takes about twice as long.
const { createRemoteJWKSet } = await import("jose/jwks/remote");
const { jwtVerify } = await import("jose/jwt/verify");

const [jwksUrl, issuer, audience, token, now] = process.argv.slice(2);
if (!token || process.argv.length > 7) {
  console.error("usage: node verify.mjs JWKS_URL ISSUER AUDIENCE TOKEN [NOW]");
  process.exit(2);
}

try {
  const jwks = createRemoteJWKSet(new URL(jwksUrl), { timeoutDuration: 10_000 });
  // Accept only the algorithms the issuer publishes keys for: a token naming any other
  // (`none`, HS256 with the public key as the secret) is refused before its signature.
  await jwks.reload();
  const algorithms = [...new Set(jwks.jwks().keys.map((key) => key.alg).filter(Boolean))];
  if (algorithms.length === 0) {
    throw Object.assign(new Error("the JWKS names no algorithm"), { code: "ERR_NO_ALGORITHMS" });
  }
  const { payload } = await jwtVerify(token, jwks, {
    issuer,
    audience,
    typ: "at+jwt",
    algorithms,
    ...(now === undefined ? {} : { currentDate: new Date(Number(now) * 1000) }),
  });
  console.log(JSON.stringify(payload));
} catch (error) {
  console.log(error.code ?? error.name);
  console.error(error.message);
  process.exit(1);
}
