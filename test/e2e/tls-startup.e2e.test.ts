import assert from 'node:assert/strict';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { classifierModel } from '../../scripts/build-models.js';
import { CertificateAuthority, type Identity } from '../support/certificates.js';
import { httpsRequest } from '../support/https-client.js';
import { spawnServer } from '../support/server-process.js';
import { makeRepository } from '../support/test-server.js';

/**
 * The server process and its TLS settings: a bad one stops it at start with exit code 2 and a
 * message naming the variable and what is wrong (never a key's contents); good ones serve HTTPS.
 */

describe('TLS settings at start (the server process)', () => {
  let ca: CertificateAuthority;
  let server: Identity;
  let client: Identity;
  let garbageKey: string;
  let notPem: string;
  const KEY_MARKER = 'SECRET-KEY-MATERIAL-0451';
  before(async () => {
    ca = await CertificateAuthority.create('startup test CA');
    server = await ca.issue('server', 'onnx-serving', { server: true });
    client = await ca.issue('client', 'client');
    garbageKey = join(ca.dir, 'garbage.key');
    await writeFile(garbageKey, `-----BEGIN PRIVATE KEY-----\n${KEY_MARKER}\n-----END PRIVATE KEY-----\n`);
    notPem = join(ca.dir, 'not-pem.crt');
    await writeFile(notPem, 'this is not a certificate\n');
  });
  after(() => ca.remove());

  /** Starts the process with `env` and expects exit code 2 with every `messages` on stderr; returns stderr. */
  async function refused(env: Record<string, string>, ...messages: RegExp[]): Promise<string> {
    // A repository that exists, so that the TLS settings are what the start refuses.
    const child = await spawnServer({ MODEL_REPOSITORY: ca.dir, ...env });
    try {
      assert.equal(await child.exited, 2, `expected exit code 2; stderr: ${child.stderr()}`);
      for (const message of messages) assert.match(child.stderr(), message);
      return child.stderr();
    } finally {
      await child.stop();
    }
  }

  const cases: [string, () => Record<string, string>, RegExp][] = [
    ['a certificate without its key', () => ({ TLS_CERT_FILE: server.certFile }), /invalid configuration: TLS_KEY_FILE: required with TLS_CERT_FILE/],
    ['a key without its certificate', () => ({ TLS_KEY_FILE: server.keyFile }), /TLS_CERT_FILE: required with TLS_KEY_FILE/],
    ['a certificate file that cannot be read', () => ({ TLS_CERT_FILE: '/nonexistent/tls.crt', TLS_KEY_FILE: server.keyFile }), /TLS_CERT_FILE="\/nonexistent\/tls.crt": cannot be read \(ENOENT\)/],
    ['a certificate file without a PEM certificate', () => ({ TLS_CERT_FILE: notPem, TLS_KEY_FILE: server.keyFile }), /TLS_CERT_FILE=".*not-pem\.crt": holds no PEM certificate/],
    ['a key that is not the certificate\'s', () => ({ TLS_CERT_FILE: server.certFile, TLS_KEY_FILE: client.keyFile }), /TLS_KEY_FILE=".*client\.key": is not the key of the certificate in TLS_CERT_FILE \(serial [0-9A-F]+\)/],
    ['client certificates required without a CA', () => ({ TLS_CERT_FILE: server.certFile, TLS_KEY_FILE: server.keyFile, TLS_CLIENT_AUTH: 'required' }), /TLS_CA_FILE: required with TLS_CLIENT_AUTH=required/],
    ['a CA file that cannot be read', () => ({ TLS_CERT_FILE: server.certFile, TLS_KEY_FILE: server.keyFile, TLS_CLIENT_AUTH: 'optional', TLS_CA_FILE: '/nonexistent/ca.crt' }), /TLS_CA_FILE="\/nonexistent\/ca.crt": cannot be read \(ENOENT\)/],
    ['a CA file without certificates', () => ({ TLS_CERT_FILE: server.certFile, TLS_KEY_FILE: server.keyFile, TLS_CLIENT_AUTH: 'required', TLS_CA_FILE: notPem }), /TLS_CA_FILE=".*not-pem\.crt": holds no PEM certificate/],
    ['a CA while no client is asked for a certificate', () => ({ TLS_CERT_FILE: server.certFile, TLS_KEY_FILE: server.keyFile, TLS_CA_FILE: ca.certFile }), /TLS_CA_FILE=".*": set, but TLS_CLIENT_AUTH=none asks no client for a certificate/],
    ['client certificates without TLS', () => ({ TLS_CLIENT_AUTH: 'required', TLS_CA_FILE: ca.certFile }), /TLS_CERT_FILE: required with TLS_CLIENT_AUTH=required/],
    ['an unknown TLS_CLIENT_AUTH', () => ({ TLS_CLIENT_AUTH: 'sometimes' }), /TLS_CLIENT_AUTH="sometimes"/],
    ['ADMIN_AUTH=client-cert without client certificates', () => ({ TLS_CERT_FILE: server.certFile, TLS_KEY_FILE: server.keyFile, ADMIN_AUTH: 'client-cert' }), /ADMIN_AUTH=client-cert: needs client certificates/],
    ['ADMIN_CLIENT_NAMES with ADMIN_AUTH=token', () => ({ ADMIN_CLIENT_NAMES: 'deployer' }), /ADMIN_CLIENT_NAMES: set, but ADMIN_AUTH=token checks no client certificate/],
  ];
  for (const [name, env, message] of cases) {
    it(`refuses ${name}: exit code 2, naming the variable`, async () => {
      await refused(env(), message);
    });
  }

  it('never writes a key\'s contents: neither a bad key\'s nor a good one\'s', async () => {
    const stderr = await refused({ TLS_CERT_FILE: server.certFile, TLS_KEY_FILE: garbageKey }, /TLS_KEY_FILE=".*garbage\.key": holds no unencrypted PEM private key/);
    assert.doesNotMatch(stderr, new RegExp(KEY_MARKER));
    const mismatched = await refused({ TLS_CERT_FILE: server.certFile, TLS_KEY_FILE: client.keyFile }, /TLS_KEY_FILE/);
    const keyBody = client.key.toString('utf8').split('\n').filter((line) => line && !line.startsWith('-----'));
    assert.ok(keyBody.length > 0);
    for (const line of keyBody) assert.ok(!mismatched.includes(line), 'the key file\'s contents were written');
  });

  it('refuses ADMIN_TOKEN with ADMIN_AUTH=client-cert, without writing the token', async () => {
    const env = { TLS_CERT_FILE: server.certFile, TLS_KEY_FILE: server.keyFile, TLS_CA_FILE: ca.certFile, TLS_CLIENT_AUTH: 'required', ADMIN_AUTH: 'client-cert', ADMIN_TOKEN: 'a-secret-admin-token-0123456789' };
    const stderr = await refused(env, /ADMIN_TOKEN: set, but ADMIN_AUTH=client-cert does not use it/);
    assert.doesNotMatch(stderr, /a-secret-admin-token-0123456789/);
  });

  it('starts with good files and serves HTTPS with them', async () => {
    const repository = await makeRepository([{ name: 'classifier', onnx: classifierModel() }]);
    const child = await spawnServer({ MODEL_REPOSITORY: repository, TLS_CERT_FILE: server.certFile, TLS_KEY_FILE: server.keyFile, TLS_CA_FILE: ca.certFile, TLS_CLIENT_AUTH: 'required' });
    try {
      const url = child.url.replace('http:', 'https:');
      let answer: Awaited<ReturnType<typeof httpsRequest>> | undefined;
      for (let attempt = 0; attempt < 600 && answer === undefined; attempt++) {
        assert.equal(await Promise.race([child.exited, sleep(50, 'running')]), 'running', `the server exited: ${child.stderr()}`);
        answer = await httpsRequest(`${url}/v2/health/live`, { tls: { ca: ca.cert, cert: client.cert, key: client.key } }).catch(() => undefined);
      }
      assert.ok(answer, `the server never answered over HTTPS: ${child.stderr()}`);
      assert.equal(answer.status, 200);
      assert.equal(answer.peer.fingerprint256, server.fingerprint256);
    } finally {
      await child.stop();
      await rm(repository, { recursive: true, force: true });
    }
  });
});
