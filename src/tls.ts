// The certificate shared by XMPP STARTTLS and MQTT over TLS (CONTRACT §1): the
// configured one, or a self-signed one generated on first start into dataDir.
import { createSecureContext, type SecureContext } from "node:tls";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { generate } from "selfsigned";

export interface TlsMaterial {
  cert: string;
  key: string;
  context: SecureContext;
  /** Where it came from, for the log. */
  source: string;
}

export async function loadTls(opts: { domain: string; dataDir: string; cert?: string; key?: string }): Promise<TlsMaterial> {
  let certFile = opts.cert;
  let keyFile = opts.key;
  if (!certFile || !keyFile) {
    const dir = join(opts.dataDir, "tls");
    certFile = join(dir, "cert.pem");
    keyFile = join(dir, "key.pem");
    if (!existsSync(certFile) || !existsSync(keyFile)) {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      const notAfterDate = new Date(Date.now() + 5 * 365 * 24 * 3600 * 1000);
      const pems = await generate([{ name: "commonName", value: opts.domain }], {
        keyType: "ec",
        curve: "P-256",
        algorithm: "sha256",
        notAfterDate,
        extensions: [
          { name: "basicConstraints", cA: false },
          { name: "keyUsage", digitalSignature: true, keyEncipherment: true },
          { name: "extKeyUsage", serverAuth: true },
          {
            name: "subjectAltName",
            altNames: [
              { type: 2, value: opts.domain },
              { type: 2, value: `*.${opts.domain}` },
              { type: 7, ip: "127.0.0.1" },
            ],
          },
        ],
      });
      writeFileSync(keyFile, pems.private, { mode: 0o600 });
      writeFileSync(certFile, pems.cert);
    }
  }
  const cert = readFileSync(certFile, "utf8");
  const key = readFileSync(keyFile, "utf8");
  return { cert, key, context: createSecureContext({ cert, key, minVersion: "TLSv1.2" }), source: certFile };
}
