import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { checkCertificates, readCertificateFiles, sameContents, type CertificateProblem } from '../../../src/infra/tls/certificate-files.js';
import { CertificateAuthority, type Identity } from '../../support/certificates.js';

/** The checks TLS files pass at start and at every reload, on certificates made by openssl. */
describe('the TLS files checks', () => {
  let ca: CertificateAuthority;
  let server: Identity;
  before(async () => {
    ca = await CertificateAuthority.create('files test CA');
    server = await ca.issue('server', 'onnx-serving', { server: true });
  });
  after(() => ca.remove());

  const paths = () => ({ cert: server.certFile, key: server.keyFile, ca: ca.certFile });

  it('accepts a certificate, its key and a CA, and tells the serving certificate', async () => {
    const contents = await readCertificateFiles(paths());
    assert.ok(!Array.isArray(contents));
    const checked = checkCertificates(paths(), contents);
    assert.ok(!Array.isArray(checked), String(checked));
    assert.equal(checked.leaf.serialNumber, server.serialNumber);
    assert.ok(sameContents(contents, checked));
  });

  it('refuses a certificate that has expired, naming its serial and date', async () => {
    const contents = await readCertificateFiles(paths());
    assert.ok(!Array.isArray(contents));
    const later = new Date(Date.now() + 3 * 24 * 3600 * 1000);
    const problems = checkCertificates(paths(), contents, later) as CertificateProblem[];
    assert.ok(Array.isArray(problems));
    assert.equal(problems.length, 1);
    assert.equal(problems[0]!.variable, 'TLS_CERT_FILE');
    assert.match(String(problems[0]), new RegExp(`^TLS_CERT_FILE=".*server\\.crt": the certificate \\(serial ${server.serialNumber}\\) expired on \\d{4}-\\d\\d-\\d\\dT`));
  });

  it('reports every unreadable file at once', async () => {
    const problems = await readCertificateFiles({ cert: '/nonexistent/a.crt', key: '/nonexistent/a.key', ca: '/nonexistent/ca.crt' });
    assert.ok(Array.isArray(problems));
    assert.deepEqual(problems.map((p) => p.variable), ['TLS_CERT_FILE', 'TLS_KEY_FILE', 'TLS_CA_FILE']);
  });

  it('tells changed contents from the same', async () => {
    const first = await readCertificateFiles(paths());
    const other = await readCertificateFiles({ cert: server.certFile, key: server.keyFile });
    assert.ok(!Array.isArray(first) && !Array.isArray(other));
    assert.ok(!sameContents(first, other));
    assert.ok(!sameContents(first, { ...first, key: Buffer.from('x') }));
  });
});
