import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { classifierModel } from '../../scripts/build-models.js';
import { startServer } from '../../src/app.js';
import { InvalidConfigurationError, loadAppConfig } from '../../src/infra/config/app-config.js';
import { ADMIN_OPENAPI } from '../../src/modules/registry/manage-model-versions/admin-openapi.js';
import { CertificateAuthority, type Identity } from '../support/certificates.js';
import { InferenceClient, Status, type ServiceError } from '../support/grpc-client.js';
import { httpsRequest } from '../support/https-client.js';
import { parsePrometheusText, valueOf } from '../support/prometheus-text.js';
import { rawHttpExchange, requestHead } from '../support/raw-http.js';
import { bearer, classifierAnswering, makeRepository, requestJson, startTestServer, type TestServer } from '../support/test-server.js';
import { freePort } from '../support/free-port.js';

/**
 * ADMIN_PORT (issue 19: "a NetworkPolicy that keeps the admin and metrics ports off the public
 * Service"): the admin API on its own listener, with the serving port's TLS, limits and auth; the
 * public ports refuse it; inference is unaffected.
 */
const TOKEN = 'admin-port-e2e-admin-token-0123456789';
const ROW = { inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [6.7, 3.0, 5.2, 2.3] }] };
const BODY_LIMIT = 1024 * 1024;

/** Every operation of the admin OpenAPI document, as a request on a model of the repository. */
const ADMIN_OPERATIONS = Object.entries(ADMIN_OPENAPI.paths).flatMap(([path, item]) =>
  Object.keys(item)
    .filter((method) => method !== 'parameters')
    .map((method) => ({ method: method.toUpperCase(), path: path.replace('{model}', 'classifier').replace('{version}', '1') })),
);

function openSocket(url: string): Promise<Socket> {
  const { hostname, port } = new URL(url);
  const socket = connect(Number(port), hostname);
  return once(socket, 'connect').then(() => {
    socket.on('error', () => undefined);
    return socket;
  });
}

describe('ADMIN_PORT: the admin API on a port of its own', () => {
  let server: TestServer;
  let adminUrl: string;
  const sockets: Socket[] = [];
  const admin = bearer(TOKEN);

  before(async () => {
    server = await startTestServer(
      await makeRepository([
        { name: 'classifier', version: 1, onnx: classifierAnswering(0) },
        { name: 'classifier', version: 2, onnx: classifierAnswering(1) },
      ]),
      {
        ADMIN_TOKEN: TOKEN,
        ADMIN_PORT: '0',
        ADMIN_MAX_CONNECTIONS: '3',
        HTTP_MAX_CONNECTIONS: '4',
        // Held connections stay held (the caps, not the timeouts, are under test).
        HTTP_HEADERS_TIMEOUT_MS: '60000',
        HTTP_REQUEST_TIMEOUT_MS: '60000',
        MAX_REQUEST_BYTES: String(BODY_LIMIT),
        MAX_REQUEST_BYTES_IN_FLIGHT: String(BODY_LIMIT + BODY_LIMIT / 2),
      },
    );
    adminUrl = server.server.adminUrl!;
  });
  after(async () => {
    for (const socket of sockets) socket.destroy();
    await server.close();
  });

  it('listens on a port of its own, apart from HTTP_PORT', () => {
    assert.ok(adminUrl, 'RunningServer.adminUrl is set');
    assert.notEqual(new URL(adminUrl).port, new URL(server.url).port);
  });

  it('serves the admin API there, behind ADMIN_TOKEN: a listing, a swap, an upload, the Triton repository API', async () => {
    assert.equal((await requestJson('GET', `${adminUrl}/admin/models`)).status, 401, 'the token is still needed');
    const listed = await requestJson('GET', `${adminUrl}/admin/models`, { headers: admin });
    assert.equal(listed.status, 200, JSON.stringify(listed.body));
    assert.deepEqual(listed.body.models.map((m: { name: string }) => m.name), ['classifier']);
    const swap = await requestJson('PUT', `${adminUrl}/admin/models/classifier/default-version`, { headers: admin, body: { version: '1' } });
    assert.equal(swap.status, 200, JSON.stringify(swap.body));
    const inferred = await requestJson('POST', `${server.url}/v2/models/classifier/infer`, { body: ROW });
    assert.equal(inferred.body.model_version, '1', 'the public port serves what the admin port swapped to');
    const upload = await fetch(`${adminUrl}/admin/models/classifier/versions/3`, { method: 'PUT', headers: { ...admin, 'content-type': 'application/octet-stream' }, body: classifierAnswering(2) });
    assert.equal(upload.status, 201, await upload.text());
    const index = await requestJson('POST', `${adminUrl}/v2/repository/index`, { headers: admin, body: {} });
    assert.equal(index.status, 200, JSON.stringify(index.body));
    assert.equal((await requestJson('GET', `${adminUrl}/admin/openapi.json`)).status, 200);
  });

  it('refuses every admin operation on HTTP_PORT with 403 naming ADMIN_PORT, with the token or without', async () => {
    assert.ok(ADMIN_OPERATIONS.length >= 12, `${ADMIN_OPERATIONS.length} operations`);
    for (const { method, path } of ADMIN_OPERATIONS) {
      for (const headers of [{}, admin]) {
        const answer = await requestJson(method, `${server.url}${path}`, { headers });
        assert.equal(answer.status, 403, `${method} ${path}: ${JSON.stringify(answer.body)}`);
        assert.match(answer.body.error, /the admin API is served on the admin port only \(ADMIN_PORT\)/);
      }
    }
    // However the path is spelled: the route matched decides, not the text.
    for (const path of ['/admin/models/', '/%61dmin/models', '/admin//models', '/v2/repository/index?x=1']) {
      const answer = await requestJson(path.includes('index') ? 'POST' : 'GET', `${server.url}${path}`, { headers: admin });
      assert.ok(answer.status === 403 || answer.status === 404, `${path}: ${answer.status} ${JSON.stringify(answer.body)}`);
    }
  });

  it('refuses an upload on HTTP_PORT before reading its body, and closes that connection', async () => {
    const answer = await rawHttpExchange(server.url, [
      requestHead('PUT', '/admin/models/classifier/versions/9', { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/octet-stream', 'content-length': BODY_LIMIT - 1 }),
    ]);
    assert.equal(answer.status, 403);
    assert.equal(answer.headers.connection, 'close');
    assert.match(answer.body.error, /ADMIN_PORT/);
  });

  it('answers what is not HTTP on ADMIN_PORT as HTTP_PORT does: 400 {"error"} naming why, the connection closed', async () => {
    const answer = await rawHttpExchange(adminUrl, ['GET /admin/models HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n']);
    assert.equal(answer.status, 400);
    assert.match(answer.headers['content-type'] ?? '', /application\/json/, "the server's own answer, not Node's bare 400");
    assert.match(answer.body.error, /\S/);
    assert.equal(answer.closed, true);
  });

  it('answers 404 on ADMIN_PORT to what is not the admin API, naming HTTP_PORT', async () => {
    for (const [method, path, body] of [
      ['POST', '/v2/models/classifier/infer', ROW],
      ['GET', '/v2/health/ready', undefined],
      ['GET', '/v2/models/classifier', undefined],
    ] as const) {
      const answer = await requestJson(method, `${adminUrl}${path}`, { headers: admin, body });
      assert.equal(answer.status, 404, `${method} ${path}: ${JSON.stringify(answer.body)}`);
      assert.match(answer.body.error, /this is the admin port \(ADMIN_PORT\).*HTTP_PORT/);
    }
  });

  it('leaves inference, health and metadata on HTTP_PORT as they were', async () => {
    assert.equal((await requestJson('GET', `${server.url}/v2/health/ready`)).status, 200);
    assert.equal((await requestJson('GET', `${server.url}/v2/models/classifier`)).status, 200);
    const inferred = await requestJson('POST', `${server.url}/v2/models/classifier/infer`, { body: ROW });
    assert.equal(inferred.status, 200, JSON.stringify(inferred.body));
  });

  it('refuses the gRPC repository methods (PERMISSION_DENIED naming ADMIN_PORT), whatever the token; gRPC inference goes on', async () => {
    const client = new InferenceClient(server.server.grpcAddress);
    try {
      for (const [method, request] of [
        ['RepositoryIndex', {}],
        ['RepositoryModelLoad', { model_name: 'classifier' }],
        ['RepositoryModelUnload', { model_name: 'classifier' }],
      ] as const) {
        for (const options of [{}, { token: TOKEN }]) {
          await assert.rejects((client.unary as (m: string, r: object, o: object) => Promise<unknown>)(method, request, options), (error: ServiceError) => {
            assert.equal(error.code, Status.PERMISSION_DENIED, `${method}: ${Status[error.code]} ${error.details}`);
            assert.match(error.details, /admin port only \(ADMIN_PORT\)/);
            return true;
          });
        }
      }
      const answer = await client.unary('ModelInfer', { model_name: 'classifier', inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], contents: { fp32_contents: ROW.inputs[0]!.data } }] });
      assert.equal(answer.model_name, 'classifier');
      assert.equal((await requestJson('GET', `${adminUrl}/admin/models`, { headers: admin })).body.models[0].versions.length, 3, 'the refused unload unloaded nothing');
    } finally {
      client.close();
    }
  });

  it('counts the admin port\'s answers in the HTTP metrics, by route', async () => {
    const before = httpCount(await (await fetch(server.server.metricsUrl!)).text(), 'GET', '/admin/models', '200');
    assert.equal((await requestJson('GET', `${adminUrl}/admin/models`, { headers: admin })).status, 200);
    const afterwards = httpCount(await (await fetch(server.server.metricsUrl!)).text(), 'GET', '/admin/models', '200');
    assert.equal(afterwards, before + 1);
  });

  it('shares one budget of request bytes in flight with HTTP_PORT (MAX_REQUEST_BYTES_IN_FLIGHT)', async () => {
    // A body announced on the public port, never sent, holds its reservation.
    const holder = await openSocket(server.url);
    sockets.push(holder);
    holder.write(requestHead('POST', '/v2/models/classifier/infer', { 'content-type': 'application/json', 'content-length': BODY_LIMIT - 1 }));
    const upload = await rawHttpExchange(adminUrl, [
      requestHead('PUT', '/admin/models/classifier/versions/8', { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/octet-stream', 'content-length': BODY_LIMIT - 1 }),
    ]);
    assert.equal(upload.status, 503, JSON.stringify(upload.body));
    assert.match(upload.body.error, /MAX_REQUEST_BYTES_IN_FLIGHT/);
    holder.destroy();
    await once(holder, 'close');
  });

  it('caps its connections at ADMIN_MAX_CONNECTIONS, apart from HTTP_PORT\'s: operators get in while public clients hold every HTTP connection', async () => {
    // The public port full (HTTP_MAX_CONNECTIONS = 4 idle connections)...
    const publicHeld = await Promise.all(Array.from({ length: 4 }, () => openSocket(server.url)));
    sockets.push(...publicHeld);
    // ...the admin port still answers.
    assert.equal((await requestJson('GET', `${adminUrl}/admin/models`, { headers: admin })).status, 200);
    for (const socket of publicHeld) socket.destroy();
    // The admin port's own cap: of 4 silent connections, the server closes one at least (the 4th, and
    // one for each connection this test's fetch keeps alive there) at once; without the cap, none
    // would be closed before the headers timeout (60 s).
    const adminHeld = await Promise.all(Array.from({ length: 4 }, () => openSocket(adminUrl)));
    sockets.push(...adminHeld);
    await Promise.race(adminHeld.map((socket) => once(socket, 'close')));
    assert.ok(adminHeld.filter((socket) => !socket.destroyed).length <= 3);
    for (const socket of adminHeld) socket.destroy();
  });
});

/** http_requests_total for one method, route and status (0 when absent). */
function httpCount(text: string, method: string, route: string, status: string): number {
  return valueOf(parsePrometheusText(text), 'http_requests_total', { method, route, status });
}

describe('ADMIN_PORT at start', () => {
  it('closes with the app: a kept-alive admin connection does not hold the shutdown, and the port is released', async () => {
    const server = await startTestServer(await makeRepository([{ name: 'classifier', onnx: classifierModel() }]), { ADMIN_TOKEN: TOKEN, ADMIN_PORT: '0' });
    const adminUrl = server.server.adminUrl!;
    // fetch keeps this connection open (keep-alive) after the answer.
    assert.equal((await requestJson('GET', `${adminUrl}/admin/models`, { headers: bearer(TOKEN) })).status, 200);
    await server.close();
    await assert.rejects(openSocket(adminUrl), /ECONNREFUSED/);
  });

  it('fails the start, naming ADMIN_PORT, when the port is taken; nothing is left listening', async () => {
    const taken = createServer();
    taken.listen(0, '127.0.0.1');
    await once(taken, 'listening');
    const port = (taken.address() as { port: number }).port;
    const httpPort = await freePort();
    try {
      const repository = await makeRepository([{ name: 'classifier', onnx: classifierModel() }]);
      const config = loadAppConfig({ MODEL_REPOSITORY: repository, HOST: '127.0.0.1', HTTP_PORT: String(httpPort), GRPC_PORT: String(await freePort()), METRICS_PORT: '0', LOG_LEVEL: 'silent', ADMIN_TOKEN: TOKEN, ADMIN_PORT: String(port) });
      await assert.rejects(startServer(config), (error: Error) => {
        assert.ok(error instanceof InvalidConfigurationError, error.message);
        assert.match(error.message, new RegExp(`ADMIN_PORT=${port}: 127\\.0\\.0\\.1:${port} is already in use`));
        return true;
      });
      // The HTTP port was released with the rest.
      const again = createServer();
      again.listen(httpPort, '127.0.0.1');
      await once(again, 'listening');
      again.close();
    } finally {
      taken.close();
    }
  });
});

describe('ADMIN_PORT with TLS: the same certificate and client authentication as the serving port', () => {
  let server: TestServer;
  let ca: CertificateAuthority;
  let adminIdentity: Identity;
  before(async () => {
    ca = await CertificateAuthority.create('onnx-serving admin-port test CA');
    const serverIdentity = await ca.issue('server', 'onnx-serving', { server: true });
    adminIdentity = await ca.issue('admin', 'deployer');
    server = await startTestServer(await makeRepository([{ name: 'classifier', onnx: classifierModel() }]), {
      ADMIN_PORT: '0',
      TLS_CERT_FILE: serverIdentity.certFile,
      TLS_KEY_FILE: serverIdentity.keyFile,
      TLS_CA_FILE: ca.certFile,
      TLS_CLIENT_AUTH: 'optional',
      ADMIN_AUTH: 'client-cert',
      ADMIN_CLIENT_NAMES: 'deployer',
    });
  });
  after(async () => {
    await server?.close();
    await ca?.remove();
  });

  it('speaks HTTPS on ADMIN_PORT, and takes the admin client certificate there', async () => {
    const adminUrl = server.server.adminUrl!;
    assert.match(adminUrl, /^https:\/\//);
    const caPem = ca.cert;
    const withCertificate = await httpsRequest(`${adminUrl}/admin/models`, { tls: { ca: caPem, cert: adminIdentity.cert, key: adminIdentity.key } });
    assert.equal(withCertificate.status, 200, withCertificate.text);
    assert.equal(withCertificate.peer.subject.CN, 'onnx-serving');
    const without = await httpsRequest(`${adminUrl}/admin/models`, { tls: { ca: caPem } });
    assert.equal(without.status, 401, without.text);
    const inference = await httpsRequest(`${server.url}/v2/models/classifier/infer`, { body: ROW, tls: { ca: caPem } });
    assert.equal(inference.status, 200, inference.text);
  });
});
