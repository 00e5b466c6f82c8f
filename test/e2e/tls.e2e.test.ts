import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { copyFile, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PeerCertificate } from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { classifierModel } from '../../scripts/build-models.js';
import { ServerTls } from '../../src/infra/tls/server-tls.js';
import { CertificateAuthority, type Identity } from '../support/certificates.js';
import { InferenceClient, OWN_CONNECTION, Status, tlsCredentials, type ServiceError } from '../support/grpc-client.js';
import { httpsRequest, keepAliveAgent, type TlsClient } from '../support/https-client.js';
import { makeRepository, startTestServer, type TestServer } from '../support/test-server.js';

/**
 * TLS and mutual TLS on every port, with certificates made at test time: a CA, the server's
 * certificate, clients' certificates, and a foreign CA with a client certificate of its own.
 */

const TOKEN = 'tls-test-admin-token-0123456789';
const classify = { inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [6.7, 3.0, 5.2, 2.3] }] };

interface Pki {
  readonly ca: CertificateAuthority;
  readonly foreignCa: CertificateAuthority;
  readonly server: Identity;
  /** Client certificates: the admin's (a SPIFFE ID), another service's, and one of the foreign CA. */
  readonly admin: Identity;
  readonly service: Identity;
  readonly foreign: Identity;
}

async function makePki(): Promise<Pki> {
  const ca = await CertificateAuthority.create('onnx-serving test CA');
  const foreignCa = await CertificateAuthority.create('foreign test CA');
  return {
    ca,
    foreignCa,
    server: await ca.issue('server', 'onnx-serving', { server: true }),
    admin: await ca.issue('admin', 'deployer', { altNames: ['URI:spiffe://test.example/ns/ops/sa/deployer'] }),
    service: await ca.issue('service', 'frontend', { altNames: ['DNS:frontend.test.example'] }),
    foreign: await foreignCa.issue('foreign', 'deployer', { altNames: ['URI:spiffe://test.example/ns/ops/sa/deployer'] }),
  };
}

/** The server's certificate files as a mounted secret would hold them (copies, rewritten by the rotation tests). */
async function secretVolume(identity: Identity, ca: Identity): Promise<{ dir: string; cert: string; key: string; ca: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'onnx-serving-secret-'));
  const volume = { dir, cert: join(dir, 'tls.crt'), key: join(dir, 'tls.key'), ca: join(dir, 'ca.crt') };
  await copyFile(identity.certFile, volume.cert);
  await copyFile(identity.keyFile, volume.key);
  await copyFile(ca.certFile, volume.ca);
  return volume;
}

/** Replaces a file as atomically as a Secret volume update: written aside, then renamed over it. */
async function replaceFile(path: string, contents: Buffer | string): Promise<void> {
  await writeFile(`${path}.new`, contents);
  await rename(`${path}.new`, path);
}

const as = (pki: Pki, client?: Identity): TlsClient => ({ ca: pki.ca.cert, cert: client?.cert, key: client?.key });

function grpcClient(server: TestServer, pki: Pki, client?: Identity, seen?: PeerCertificate[]): InferenceClient {
  // The name checked is localhost (in the certificate, as 127.0.0.1 is): an IP address is no TLS server name (RFC 6066).
  return new InferenceClient(server.server.grpcAddress, { ...OWN_CONNECTION, 'grpc.ssl_target_name_override': 'localhost' }, tlsCredentials({ ca: pki.ca.cert, cert: client?.cert, key: client?.key, onServerCertificate: (c) => seen?.push(c) }));
}

function rejectsWith(promise: Promise<unknown>, code: Status, details?: RegExp): Promise<void> {
  return assert.rejects(promise, (error: ServiceError) => {
    assert.equal(error.code, code, `expected ${Status[code]}, got ${Status[error.code]}: ${error.details}`);
    if (details) assert.match(error.details, details);
    return true;
  });
}

describe('TLS and mutual TLS', () => {
  let pki: Pki;
  before(async () => {
    pki = await makePki();
  });
  after(async () => {
    await pki.ca.remove();
    await pki.foreignCa.remove();
  });

  describe('TLS without client certificates', () => {
    let server: TestServer;
    before(async () => {
      server = await startTestServer(await makeRepository([{ name: 'classifier', onnx: classifierModel() }]), { TLS_CERT_FILE: pki.server.certFile, TLS_KEY_FILE: pki.server.keyFile });
    });
    after(() => server.close());

    it('serves HTTPS with the configured certificate, and announces an https:// address', async () => {
      assert.match(server.url, /^https:\/\//);
      const answer = await httpsRequest(`${server.url}/v2/models/classifier/infer`, { body: classify, tls: as(pki) });
      assert.equal(answer.status, 200, answer.text);
      assert.equal(answer.peer.fingerprint256, pki.server.fingerprint256);
    });

    it('refuses a plaintext HTTP client: no answer on the HTTPS port', async () => {
      await assert.rejects(fetch(`${server.url.replace('https:', 'http:')}/v2/health/live`), TypeError);
    });

    it('refuses a client that does not trust the certificate (another CA)', async () => {
      await assert.rejects(httpsRequest(`${server.url}/v2/health/live`, { tls: { ca: pki.foreignCa.cert } }), /self-signed|unable to verify|certificate/i);
    });

    it('serves gRPC over TLS; a plaintext gRPC client gets UNAVAILABLE', async () => {
      const seen: PeerCertificate[] = [];
      const secure = grpcClient(server, pki, undefined, seen);
      const plaintext = new InferenceClient(server.server.grpcAddress, OWN_CONNECTION);
      try {
        assert.deepEqual(await secure.unary('ServerLive', {}), { live: true });
        assert.equal(seen.at(-1)?.fingerprint256, pki.server.fingerprint256);
        await rejectsWith(plaintext.unary('ServerLive', {}, { deadlineMs: 5000 }), Status.UNAVAILABLE);
      } finally {
        secure.close();
        plaintext.close();
      }
    });

    it('serves the metrics port over HTTPS too', async () => {
      const metricsUrl = server.server.metricsUrl!;
      assert.match(metricsUrl, /^https:\/\//);
      const answer = await httpsRequest(metricsUrl, { tls: as(pki) });
      assert.equal(answer.status, 200);
      assert.match(answer.text, /^# HELP/m);
      assert.equal(answer.peer.fingerprint256, pki.server.fingerprint256);
    });
  });

  describe('TLS_CLIENT_AUTH=required (mutual TLS)', () => {
    let server: TestServer;
    before(async () => {
      server = await startTestServer(await makeRepository([{ name: 'classifier', onnx: classifierModel() }]), {
        TLS_CERT_FILE: pki.server.certFile,
        TLS_KEY_FILE: pki.server.keyFile,
        TLS_CA_FILE: pki.ca.certFile,
        TLS_CLIENT_AUTH: 'required',
      });
    });
    after(() => server.close());

    it('serves a client whose certificate the CA signed, over HTTP and gRPC', async () => {
      const answer = await httpsRequest(`${server.url}/v2/models/classifier/infer`, { body: classify, tls: as(pki, pki.service) });
      assert.equal(answer.status, 200, answer.text);
      const client = grpcClient(server, pki, pki.service);
      try {
        assert.deepEqual(await client.unary('ServerLive', {}), { live: true });
      } finally {
        client.close();
      }
    });

    it('refuses a client without a certificate, over HTTP and gRPC', async () => {
      await assert.rejects(httpsRequest(`${server.url}/v2/health/live`, { tls: as(pki) }), /certificate|ECONNRESET|socket hang up/i);
      const client = grpcClient(server, pki);
      try {
        await rejectsWith(client.unary('ServerLive', {}, { deadlineMs: 5000 }), Status.UNAVAILABLE);
      } finally {
        client.close();
      }
    });

    it('refuses a client certificate of another CA, over HTTP and gRPC', async () => {
      await assert.rejects(httpsRequest(`${server.url}/v2/health/live`, { tls: as(pki, pki.foreign) }), /certificate|unknown ca|ECONNRESET|socket hang up/i);
      const client = grpcClient(server, pki, pki.foreign);
      try {
        await rejectsWith(client.unary('ServerLive', {}, { deadlineMs: 5000 }), Status.UNAVAILABLE);
      } finally {
        client.close();
      }
    });

    it('asks the same of Prometheus on the metrics port', async () => {
      await assert.rejects(httpsRequest(server.server.metricsUrl!, { tls: as(pki) }), /certificate|ECONNRESET|socket hang up/i);
      assert.equal((await httpsRequest(server.server.metricsUrl!, { tls: as(pki, pki.service) })).status, 200);
    });
  });

  describe('certificate rotation', () => {
    let server: TestServer;
    let volume: Awaited<ReturnType<typeof secretVolume>>;
    before(async () => {
      volume = await secretVolume(pki.server, pki.ca);
      server = await startTestServer(await makeRepository([{ name: 'classifier', onnx: classifierModel() }]), {
        TLS_CERT_FILE: volume.cert,
        TLS_KEY_FILE: volume.key,
        TLS_CA_FILE: volume.ca,
        TLS_CLIENT_AUTH: 'required',
        TLS_RELOAD_INTERVAL_MS: '100',
      });
    });
    after(async () => {
      await server.close();
      await rm(volume.dir, { recursive: true, force: true });
    });

    /** Polls new connections (a bounded number of times) until one is served `expected`; fails if none ever is. */
    async function untilServed(connect: () => Promise<string | undefined>, expected: string): Promise<void> {
      let seen: string | undefined;
      for (let attempt = 0; attempt < 200 && seen !== expected; attempt++) {
        if (attempt > 0) await sleep(25);
        seen = await connect();
      }
      assert.equal(seen, expected, 'the rotated certificate was never served');
    }

    it('serves a rotated certificate from the next connection on, over HTTP and gRPC, and keeps open connections', async () => {
      const agent = keepAliveAgent(as(pki, pki.service));
      const seen: PeerCertificate[] = [];
      const openGrpc = grpcClient(server, pki, pki.service, seen);
      try {
        // Connections opened before the rotation.
        const before = await httpsRequest(`${server.url}/v2/health/live`, { tls: as(pki, pki.service), agent });
        assert.equal(before.peer.fingerprint256, pki.server.fingerprint256);
        assert.deepEqual(await openGrpc.unary('ServerLive', {}), { live: true });
        assert.equal(seen.length, 1);

        const rotated = await pki.ca.issue('server-rotated', 'onnx-serving', { server: true });
        assert.notEqual(rotated.serialNumber, pki.server.serialNumber);
        await replaceFile(volume.key, rotated.key);
        await replaceFile(volume.cert, rotated.cert);

        await untilServed(async () => (await httpsRequest(`${server.url}/v2/health/live`, { tls: as(pki, pki.service) })).peer.serialNumber, rotated.serialNumber);
        await untilServed(async () => {
          const fresh: PeerCertificate[] = [];
          const client = grpcClient(server, pki, pki.service, fresh);
          try {
            await client.unary('ServerLive', {});
            return fresh[0]?.serialNumber;
          } finally {
            client.close();
          }
        }, rotated.serialNumber);

        // The connections opened before are still open, still with the old certificate.
        const after = await httpsRequest(`${server.url}/v2/models/classifier/infer`, { body: classify, tls: as(pki, pki.service), agent });
        assert.equal(after.status, 200);
        assert.equal(after.localPort, before.localPort, 'the kept-alive HTTPS connection was dropped');
        assert.equal(after.peer.fingerprint256, pki.server.fingerprint256);
        assert.deepEqual(await openGrpc.unary('ServerLive', {}), { live: true });
        assert.equal(seen.length, 1, 'the open gRPC connection was dropped and made again');
      } finally {
        agent.destroy();
        openGrpc.close();
      }
    });

    it('keeps serving the last good certificate while the files are half rotated (a key without its certificate, garbage)', async () => {
      const tls = server.server.app.get(ServerTls);
      const serving = tls.certificate!.serialNumber;
      const next = await pki.ca.issue('server-next', 'onnx-serving', { server: true });
      await replaceFile(volume.key, next.key);
      await tls.reload();
      assert.equal(tls.certificate!.serialNumber, serving);
      const midway = await httpsRequest(`${server.url}/v2/health/live`, { tls: as(pki, pki.service) });
      assert.equal(midway.status, 200);
      assert.equal(midway.peer.serialNumber, serving);
      const seen: PeerCertificate[] = [];
      const client = grpcClient(server, pki, pki.service, seen);
      try {
        assert.deepEqual(await client.unary('ServerLive', {}), { live: true });
        assert.equal(seen[0]?.serialNumber, serving);
      } finally {
        client.close();
      }

      await replaceFile(volume.cert, 'not a certificate');
      await tls.reload();
      assert.equal(tls.certificate!.serialNumber, serving);

      await replaceFile(volume.cert, next.cert);
      await tls.reload();
      assert.equal(tls.certificate!.serialNumber, next.serialNumber);
      assert.equal((await httpsRequest(`${server.url}/v2/health/live`, { tls: as(pki, pki.service) })).peer.serialNumber, next.serialNumber);
    });
  });

  describe('CA rotation', () => {
    let server: TestServer;
    let volume: Awaited<ReturnType<typeof secretVolume>>;
    before(async () => {
      volume = await secretVolume(pki.server, pki.ca);
      server = await startTestServer(await makeRepository([{ name: 'classifier', onnx: classifierModel() }]), {
        TLS_CERT_FILE: volume.cert,
        TLS_KEY_FILE: volume.key,
        TLS_CA_FILE: volume.ca,
        TLS_CLIENT_AUTH: 'required',
      });
    });
    after(async () => {
      await server.close();
      await rm(volume.dir, { recursive: true, force: true });
    });

    it('trusts client certificates of a CA added to TLS_CA_FILE from the next connection on, over HTTP and gRPC', async () => {
      const foreignClient = () => grpcClient(server, pki, pki.foreign);
      await assert.rejects(httpsRequest(`${server.url}/v2/health/live`, { tls: as(pki, pki.foreign) }));
      let client = foreignClient();
      try {
        await rejectsWith(client.unary('ServerLive', {}, { deadlineMs: 5000 }), Status.UNAVAILABLE);
      } finally {
        client.close();
      }
      // Both CAs while client certificates of both are in use.
      await replaceFile(volume.ca, Buffer.concat([pki.ca.cert, pki.foreignCa.cert]));
      await server.server.app.get(ServerTls).reload();
      assert.equal((await httpsRequest(`${server.url}/v2/health/live`, { tls: as(pki, pki.foreign) })).status, 200);
      assert.equal((await httpsRequest(`${server.url}/v2/health/live`, { tls: as(pki, pki.service) })).status, 200);
      client = foreignClient();
      try {
        assert.deepEqual(await client.unary('ServerLive', {}), { live: true });
      } finally {
        client.close();
      }
    });
  });

  describe('the admin API by client certificate', () => {
    const ADMIN_NAME = 'spiffe://test.example/ns/ops/sa/deployer';

    describe('ADMIN_AUTH=client-cert with TLS_CLIENT_AUTH=optional and ADMIN_CLIENT_NAMES', () => {
      let server: TestServer;
      let stateDir: string;
      before(async () => {
        stateDir = await mkdtemp(join(tmpdir(), 'onnx-serving-state-'));
        server = await startTestServer(await makeRepository([{ name: 'classifier', onnx: classifierModel() }]), {
          STATE_DIR: stateDir,
          TLS_CERT_FILE: pki.server.certFile,
          TLS_KEY_FILE: pki.server.keyFile,
          TLS_CA_FILE: pki.ca.certFile,
          TLS_CLIENT_AUTH: 'optional',
          ADMIN_AUTH: 'client-cert',
          ADMIN_CLIENT_NAMES: `admin-console, ${ADMIN_NAME}`,
        });
      });
      after(async () => {
        await server.close();
        await rm(stateDir, { recursive: true, force: true });
      });

      it('generates no admin token', async () => {
        assert.equal(existsSync(join(stateDir, 'admin-token')), false);
      });

      it('lets a listed certificate in without a token (HTTP and gRPC)', async () => {
        const answer = await httpsRequest(`${server.url}/admin/models`, { tls: as(pki, pki.admin) });
        assert.equal(answer.status, 200, answer.text);
        assert.deepEqual(answer.body.models.map((m: { name: string }) => m.name), ['classifier']);
        const client = grpcClient(server, pki, pki.admin);
        try {
          const index = await client.unary('RepositoryIndex', {});
          assert.deepEqual(index.models.map((m) => m.name), ['classifier']);
        } finally {
          client.close();
        }
      });

      it('answers 403 / PERMISSION_DENIED to a certificate of the CA that is not listed', async () => {
        const answer = await httpsRequest(`${server.url}/admin/models`, { tls: as(pki, pki.service) });
        assert.equal(answer.status, 403);
        assert.match(answer.body.error, /the client certificate \(frontend, frontend\.test\.example\) is not one of ADMIN_CLIENT_NAMES/);
        const client = grpcClient(server, pki, pki.service);
        try {
          await rejectsWith(client.unary('RepositoryIndex', {}), Status.PERMISSION_DENIED, /not one of ADMIN_CLIENT_NAMES/);
        } finally {
          client.close();
        }
      });

      it('answers 401 / UNAUTHENTICATED without a certificate, or with one the CA did not sign, whatever token', async () => {
        for (const client of [undefined, pki.foreign]) {
          const answer = await httpsRequest(`${server.url}/admin/models`, { tls: as(pki, client), headers: { authorization: `Bearer ${TOKEN}` } });
          assert.equal(answer.status, 401);
          assert.match(answer.body.error, /the admin API needs a client certificate signed by the CA of TLS_CA_FILE/);
          const grpc = grpcClient(server, pki, client);
          try {
            await rejectsWith(grpc.unary('RepositoryIndex', {}, { token: TOKEN }), Status.UNAUTHENTICATED, /client certificate/);
          } finally {
            grpc.close();
          }
        }
      });

      it('serves inference to clients without a certificate (optional)', async () => {
        const answer = await httpsRequest(`${server.url}/v2/models/classifier/infer`, { body: classify, tls: as(pki) });
        assert.equal(answer.status, 200, answer.text);
      });
    });

    describe('ADMIN_AUTH=both', () => {
      let server: TestServer;
      before(async () => {
        server = await startTestServer(await makeRepository([{ name: 'classifier', onnx: classifierModel() }]), {
          TLS_CERT_FILE: pki.server.certFile,
          TLS_KEY_FILE: pki.server.keyFile,
          TLS_CA_FILE: pki.ca.certFile,
          TLS_CLIENT_AUTH: 'required',
          ADMIN_AUTH: 'both',
          ADMIN_TOKEN: TOKEN,
        });
      });
      after(() => server.close());

      it('needs the certificate and the token', async () => {
        const withoutToken = await httpsRequest(`${server.url}/admin/models`, { tls: as(pki, pki.service) });
        assert.equal(withoutToken.status, 401);
        assert.match(withoutToken.body.error, /Bearer <token>/);
        const withBoth = await httpsRequest(`${server.url}/admin/models`, { tls: as(pki, pki.service), headers: { authorization: `Bearer ${TOKEN}` } });
        assert.equal(withBoth.status, 200, withBoth.text);
        const client = grpcClient(server, pki, pki.service);
        try {
          await rejectsWith(client.unary('RepositoryIndex', {}), Status.UNAUTHENTICATED, /Bearer <token>/);
          assert.ok(Array.isArray((await client.unary('RepositoryIndex', {}, { token: TOKEN })).models));
        } finally {
          client.close();
        }
      });
    });
  });
});
