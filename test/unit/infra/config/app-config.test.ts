import { availableParallelism } from 'node:os';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AppConfig, bindFailure, checkModelRepository, InvalidConfigurationError, loadAppConfig } from '../../../../src/infra/config/app-config.js';
import { assertErrorMentions, thrownBy } from '../../support/domain-error.assertions.js';

function refused(env: Record<string, string>, ...mentions: string[]): void {
  assertErrorMentions(() => loadAppConfig(env), mentions, InvalidConfigurationError);
}

describe('loadAppConfig', () => {
  it('uses the defaults for an empty environment', () => {
    const config = loadAppConfig({});
    assert.ok(config instanceof AppConfig);
    assert.deepEqual(
      { ...config },
      {
        MODEL_REPOSITORY: './models',
        HOST: '0.0.0.0',
        HTTP_PORT: 8000,
        GRPC_PORT: 8001,
        METRICS_PORT: 8002,
        // The cores beside the main thread and one for the model instances, at most 8.
        INGRESS_THREADS: Math.max(0, Math.min(8, availableParallelism() - 2)),
        LOG_LEVEL: 'info',
        MAX_REQUEST_BYTES: 64 * 1024 * 1024,
        MAX_RESPONSE_BYTES: 64 * 1024 * 1024,
        MAX_MODEL_THREADS: 0,
        MAX_REQUEST_TIMEOUT_MS: 60_000,
        MODEL_WARMUP_TIMEOUT_MS: 60_000,
        GENERATION_MAX_NUM_SEQS: 32,
        GENERATION_KV_CACHE_BYTES: 256 * 1024 * 1024,
        GENERATION_MAX_PREFILL_TOKENS_PER_STEP: 256,
        GENERATION_OVERLAP_STEPS: true,
        GENERATION_STREAM_BUFFER_TOKENS: 64,
        GENERATION_MAX_DURATION_MS: 600_000,
        GRPC_KEEPALIVE_TIME_MS: 60_000,
        GRPC_KEEPALIVE_TIMEOUT_MS: 20_000,
        SHUTDOWN_DRAIN_DELAY_MS: 5000,
        SHUTDOWN_GRACE_MS: 30_000,
        BREAKER_ERROR_RATE: 0.5,
        BREAKER_MIN_REQUESTS: 20,
        BREAKER_WINDOW_MS: 10_000,
        BREAKER_OPEN_MS: 5000,
        ALLOW_METRICS: true,
        ROLLOUT_EVALUATION_INTERVAL_MS: 1000,
        STATE_DIR: './state',
        REDIS_KEY_PREFIX: 'onnx-serving:',
        REDIS_LOCK_TTL_MS: 10_000,
        ALLOW_CLIENT_SHM: false,
        SHARED_MEMORY_MAX_REGIONS: 128,
        SHARED_MEMORY_MAX_BYTES: 16 * 1024 ** 3,
        STRICT_READINESS: true,
        HTTP_MAX_CONNECTIONS: 0,
        GRPC_MAX_CONNECTIONS: 0,
        ADMIN_MAX_CONNECTIONS: 64,
        METRICS_MAX_CONNECTIONS: 32,
        HTTP_KEEP_ALIVE_TIMEOUT_MS: 5000,
        GRPC_MAX_CONNECTION_IDLE_MS: 300_000,
        MAX_REQUEST_BYTES_IN_FLIGHT: 512 * 1024 * 1024,
        GRPC_STREAM_MAX_BUFFERED_BYTES: 8 * 1024 * 1024,
        THROTTLE_ADDRESS_RATE: 0,
        THROTTLE_ADDRESS_BURST: 0,
        THROTTLE_LEASE_SIZE: 0,
        THROTTLE_LEASE_MS: 1000,
        THROTTLE_RATE: 0,
        THROTTLE_BURST: 0,
        MAX_INFLIGHT_REQUESTS: 0,
        ADAPTIVE_CONCURRENCY: false,
        HTTP_HEADERS_TIMEOUT_MS: 10_000,
        HTTP_REQUEST_TIMEOUT_MS: 60_000,
        MAX_JSON_DEPTH: 64,
        TLS_CLIENT_AUTH: 'none',
        TLS_RELOAD_INTERVAL_MS: 10_000,
        ADMIN_AUTH: 'token',
        JOB_RESULT_TTL_MS: 3_600_000,
        JOB_MAX_PENDING: 1000,
        JOB_CONCURRENCY: 4,
        JOB_MAX_ATTEMPTS: 3,
        JOB_RETRY_BACKOFF_MS: 1000,
        JOB_LOCK_DURATION_MS: 30_000,
        JOB_STALLED_INTERVAL_MS: 30_000,
        JOB_QUEUE_PREFIX: 'onnx-serving',
      },
    );
  });

  it('reads the jobs\' settings and refuses a REDIS_URL that is not redis:// or rediss://', () => {
    const config = loadAppConfig({ REDIS_URL: 'redis://:secret@redis:6379/0', ADMIN_TOKEN: 'a-shared-admin-token', JOB_CONCURRENCY: '0', JOB_RESULT_TTL_MS: '60000' });
    assert.equal(config.REDIS_URL, 'redis://:secret@redis:6379/0');
    assert.equal(config.JOB_CONCURRENCY, 0);
    assert.equal(config.JOB_RESULT_TTL_MS, 60_000);
    assert.throws(() => loadAppConfig({ REDIS_URL: 'http://redis:6379' }), /REDIS_URL.*must be a redis:\/\/ or rediss:\/\/ URL/);
    assert.throws(() => loadAppConfig({ JOB_MAX_PENDING: '0' }), /JOB_MAX_PENDING/);
    assert.throws(() => loadAppConfig({ JOB_QUEUE_PREFIX: 'a b' }), /JOB_QUEUE_PREFIX/);
  });

  it('reads ADMIN_CLIENT_NAMES as a comma-separated list, blanks around names dropped', () => {
    assert.deepEqual(loadAppConfig({ ADMIN_CLIENT_NAMES: ' deployer , spiffe://cluster.local/ns/ops/sa/ci,' }).ADMIN_CLIENT_NAMES, ['deployer', 'spiffe://cluster.local/ns/ops/sa/ci']);
  });

  it('reads every variable, converting numbers and flags', () => {
    const config = loadAppConfig({
      MODEL_REPOSITORY: '/srv/models',
      HOST: '127.0.0.1',
      HTTP_PORT: '9000',
      GRPC_PORT: '9001',
      METRICS_PORT: '0',
      LOG_LEVEL: 'debug',
      MAX_REQUEST_BYTES: '1048576',
      GRPC_KEEPALIVE_TIME_MS: '30000',
      GRPC_KEEPALIVE_TIMEOUT_MS: '5000',
      STRICT_READINESS: 'false',
    });
    assert.equal(config.MODEL_REPOSITORY, '/srv/models');
    assert.equal(config.HOST, '127.0.0.1');
    assert.equal(config.HTTP_PORT, 9000);
    assert.equal(config.GRPC_PORT, 9001);
    assert.equal(config.METRICS_PORT, 0);
    assert.equal(config.LOG_LEVEL, 'debug');
    assert.equal(config.MAX_REQUEST_BYTES, 1048576);
    assert.equal(config.GRPC_KEEPALIVE_TIME_MS, 30000);
    assert.equal(config.GRPC_KEEPALIVE_TIMEOUT_MS, 5000);
    assert.equal(config.STRICT_READINESS, false);
  });

  it('reads STRICT_READINESS from 1 and 0 as well', () => {
    assert.equal(loadAppConfig({ STRICT_READINESS: '0' }).STRICT_READINESS, false);
    assert.equal(loadAppConfig({ STRICT_READINESS: '1' }).STRICT_READINESS, true);
  });

  it('treats an empty variable as unset', () => {
    assert.equal(loadAppConfig({ HTTP_PORT: '', LOG_LEVEL: '' }).HTTP_PORT, 8000);
  });

  it('treats a variable of only spaces as unset, rather than as port 0', () => {
    assert.equal(loadAppConfig({ HTTP_PORT: '  ' }).HTTP_PORT, 8000);
  });

  it('ignores variables it does not know', () => {
    assert.equal(loadAppConfig({ PATH: '/usr/bin', HOME: '/root' }).HOST, '0.0.0.0');
  });

  describe('refuses a bad value, naming the variable and its value', () => {
    it('a port that is not a number', () => {
      refused({ HTTP_PORT: 'abc' }, 'HTTP_PORT', '"abc"');
    });

    it('a port above 65535', () => {
      refused({ HTTP_PORT: '70000' }, 'HTTP_PORT', '"70000"');
    });

    it('a negative port', () => {
      refused({ GRPC_PORT: '-1' }, 'GRPC_PORT', '"-1"');
    });

    it('a port that is not an integer', () => {
      refused({ METRICS_PORT: '80.5' }, 'METRICS_PORT', '"80.5"');
    });

    it('a request limit beyond what a gRPC message length can say (2 GiB - 1)', () => {
      refused({ MAX_REQUEST_BYTES: String(2 ** 31) }, 'MAX_REQUEST_BYTES', `"${2 ** 31}"`);
    });

    it('a keepalive interval under a second', () => {
      refused({ GRPC_KEEPALIVE_TIME_MS: '10' }, 'GRPC_KEEPALIVE_TIME_MS', '"10"');
    });

    it('a warm-up time limit of zero', () => {
      refused({ MODEL_WARMUP_TIMEOUT_MS: '0' }, 'MODEL_WARMUP_TIMEOUT_MS', '"0"');
    });

    it('an unknown log level', () => {
      refused({ LOG_LEVEL: 'loud' }, 'LOG_LEVEL', '"loud"');
    });

    it('a flag that is not true/false/1/0', () => {
      refused({ STRICT_READINESS: 'yes' }, 'STRICT_READINESS', '"yes"');
    });

    it('a body limit below 1 KiB', () => {
      refused({ MAX_REQUEST_BYTES: '100' }, 'MAX_REQUEST_BYTES', '"100"');
    });

    it('a client-certificate mode, admin mode or allow-list that means nothing', () => {
      refused({ TLS_CLIENT_AUTH: 'sometimes' }, 'TLS_CLIENT_AUTH', '"sometimes"');
      refused({ ADMIN_AUTH: 'password' }, 'ADMIN_AUTH', '"password"');
      refused({ ADMIN_CLIENT_NAMES: ' , ' }, 'ADMIN_CLIENT_NAMES', 'at least one certificate');
      refused({ TLS_RELOAD_INTERVAL_MS: '10' }, 'TLS_RELOAD_INTERVAL_MS', '"10"');
    });

    it('every bad variable at once', () => {
      refused({ HTTP_PORT: 'abc', LOG_LEVEL: 'loud', HOST: '127.0.0.1' }, 'HTTP_PORT="abc"', 'LOG_LEVEL="loud"');
    });
  });

  describe('never shows a secret', () => {
    it('writes ADMIN_TOKEN as *** in the error, beside the other bad values shown as they are', () => {
      const error = thrownBy(() => loadAppConfig({ ADMIN_TOKEN: 'hunter2-short', HTTP_PORT: 'abc' }));
      assert.ok(error instanceof InvalidConfigurationError);
      assert.match(error.message, /ADMIN_TOKEN=\*\*\*: must be at least 16 characters/);
      assert.match(error.message, /HTTP_PORT="abc"/);
      assert.doesNotMatch(error.message, /hunter2/);
    });

    it('writes REDIS_URL as *** (it may carry a password), and refuses a URL of another scheme', () => {
      const error = thrownBy(() => loadAppConfig({ REDIS_URL: 'http://:hunter2@cache:6379' }));
      assert.ok(error instanceof InvalidConfigurationError);
      assert.match(error.message, /REDIS_URL=\*\*\*: must be a redis:\/\/ or rediss:\/\/ URL/);
      assert.doesNotMatch(error.message, /hunter2/);
      assert.equal(loadAppConfig({ REDIS_URL: 'rediss://:secret@cache:6380/2', ADMIN_TOKEN: 'a-shared-admin-token' }).REDIS_URL, 'rediss://:secret@cache:6380/2');
    });
  });

  describe('refuses two servers on one port', () => {
    it('names each variable that repeats an earlier one', () => {
      refused({ HTTP_PORT: '9000', GRPC_PORT: '9000', METRICS_PORT: '9000' }, 'GRPC_PORT=9000: the same port as HTTP_PORT', 'METRICS_PORT=9000: the same port as HTTP_PORT');
      refused({ GRPC_PORT: '9002', METRICS_PORT: '9002' }, 'METRICS_PORT=9002: the same port as GRPC_PORT');
      refused({ HTTP_PORT: '9000', ADMIN_PORT: '9000' }, 'ADMIN_PORT=9000: the same port as HTTP_PORT');
      refused({ ADMIN_PORT: '8002' }, 'ADMIN_PORT=8002: the same port as METRICS_PORT');
    });

    it('ADMIN_PORT: unset by default (the admin API on HTTP_PORT); a port, or 0; none above 65535', () => {
      assert.equal(loadAppConfig({}).ADMIN_PORT, undefined);
      assert.equal(loadAppConfig({ ADMIN_PORT: '8003' }).ADMIN_PORT, 8003);
      assert.equal(loadAppConfig({ ADMIN_PORT: '0', HTTP_PORT: '0' }).ADMIN_PORT, 0);
      assert.equal(loadAppConfig({ ADMIN_PORT: '8002', ALLOW_METRICS: 'false' }).ADMIN_PORT, 8002);
      assert.throws(() => loadAppConfig({ ADMIN_PORT: '70000' }), /ADMIN_PORT/);
    });

    it('but not port 0 (each gets a free port), nor METRICS_PORT while metrics are off', () => {
      assert.equal(loadAppConfig({ HTTP_PORT: '0', GRPC_PORT: '0', METRICS_PORT: '0' }).GRPC_PORT, 0);
      assert.equal(loadAppConfig({ ALLOW_METRICS: 'false', METRICS_PORT: '8000' }).METRICS_PORT, 8000);
    });
  });
});

describe('checkModelRepository', () => {
  it('accepts a directory it can list, empty or not', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'repository-check-'));
    try {
      await checkModelRepository(loadAppConfig({ MODEL_REPOSITORY: dir }));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses a path that does not exist, naming the variable, the path and why', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'repository-check-'));
    await rm(dir, { recursive: true });
    await assert.rejects(checkModelRepository(loadAppConfig({ MODEL_REPOSITORY: dir })), (error: Error) => {
      assert.ok(error instanceof InvalidConfigurationError);
      assert.equal(error.message, `invalid configuration: MODEL_REPOSITORY=${JSON.stringify(dir)}: does not exist (${dir})`);
      return true;
    });
  });

  it('refuses a file, and a path through a file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'repository-check-'));
    try {
      const file = join(dir, 'models');
      await writeFile(file, 'not a directory');
      await assert.rejects(checkModelRepository(loadAppConfig({ MODEL_REPOSITORY: file })), /MODEL_REPOSITORY=".*models": is not a directory/);
      await assert.rejects(checkModelRepository(loadAppConfig({ MODEL_REPOSITORY: join(file, 'inside') })), /MODEL_REPOSITORY=".*inside": cannot be read .*not a directory \(ENOTDIR\)/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('bindFailure', () => {
  const config = loadAppConfig({ HOST: '127.0.0.1', HTTP_PORT: '8000', GRPC_PORT: '8001', METRICS_PORT: '8002' });
  const socketError = (code: string) => Object.assign(new Error(`listen ${code}: something 127.0.0.1:8000`), { code, syscall: 'listen' });

  it('makes each socket error that says the address cannot be had a configuration error naming the variable and the address', () => {
    const cases: [string, string][] = [
      ['EADDRINUSE', 'HTTP_PORT=8000: 127.0.0.1:8000 is already in use'],
      ['EACCES', 'HTTP_PORT=8000: binding 127.0.0.1:8000 is not permitted'],
      ['EADDRNOTAVAIL', 'HTTP_PORT=8000: 127.0.0.1:8000 cannot be bound: HOST is not an address of this machine'],
      ['ENOTFOUND', 'HTTP_PORT=8000: 127.0.0.1:8000 cannot be bound: HOST does not resolve'],
    ];
    for (const [code, says] of cases) {
      const error = bindFailure('HTTP_PORT', config, socketError(code));
      assert.ok(error instanceof InvalidConfigurationError, code);
      assert.ok(error.message.startsWith(`invalid configuration: ${says}`), error.message);
      assert.ok(error.message.endsWith(`(${code})`), error.message);
    }
  });

  it('reads grpc-js errors by their message (they carry no code)', () => {
    const inUse = bindFailure('GRPC_PORT', config, new Error('No address added out of total 1 resolved errors: [listen EADDRINUSE: address already in use 127.0.0.1:8001]'));
    assert.ok(inUse instanceof InvalidConfigurationError);
    assert.equal(inUse.message, 'invalid configuration: GRPC_PORT=8001: 127.0.0.1:8001 is already in use (another process listens there) (EADDRINUSE)');
    const unresolved = bindFailure('GRPC_PORT', config, new Error('Name resolution failed for target dns:nowhere.invalid:8001'));
    assert.ok(unresolved instanceof InvalidConfigurationError);
    assert.match(unresolved.message, /GRPC_PORT=8001: .*HOST does not resolve \(ENOTFOUND\)/);
  });

  it('writes an IPv6 host in brackets', () => {
    const error = bindFailure('METRICS_PORT', loadAppConfig({ HOST: '::1' }), socketError('EADDRINUSE'));
    assert.match((error as Error).message, /METRICS_PORT=8002: \[::1\]:8002 is already in use/);
  });

  it('leaves any other error as it is, a configuration error included', () => {
    const other = new Error('something else broke');
    assert.equal(bindFailure('HTTP_PORT', config, other), other);
    const already = new InvalidConfigurationError('invalid configuration: METRICS_PORT=8002: 127.0.0.1:8002 is already in use (EADDRINUSE)');
    assert.equal(bindFailure('HTTP_PORT', config, already), already);
  });

  describe('replicas (REDIS_URL)', () => {
    it('reads REDIS_URL with the shared admin token, and the Redis settings', () => {
      const config = loadAppConfig({ REDIS_URL: 'redis://redis:6379/0', ADMIN_TOKEN: 'a-token-of-sixteen+', REDIS_KEY_PREFIX: 'prod:', REDIS_LOCK_TTL_MS: '5000' });
      assert.equal(config.REDIS_URL, 'redis://redis:6379/0');
      assert.equal(config.REDIS_KEY_PREFIX, 'prod:');
      assert.equal(config.REDIS_LOCK_TTL_MS, 5000);
      assert.equal(loadAppConfig({}).REDIS_KEY_PREFIX, 'onnx-serving:');
    });

    it('refuses REDIS_URL without ADMIN_TOKEN or ADMIN_TOKEN_FILE (no token generated per replica), naming the variable', () => {
      const error = thrownBy(() => loadAppConfig({ REDIS_URL: 'redis://redis:6379' })) as Error;
      assert.match(error.message, /ADMIN_TOKEN: must be set \(or ADMIN_TOKEN_FILE, e\.g\. a mounted Secret\) when REDIS_URL is set/);
      assert.equal(loadAppConfig({ REDIS_URL: 'redis://redis:6379', ADMIN_TOKEN_FILE: '/run/secrets/admin-token' }).ADMIN_TOKEN_FILE, '/run/secrets/admin-token');
      assert.equal(loadAppConfig({ REDIS_URL: 'redis://redis:6379', ADMIN_AUTH: 'client-cert' }).ADMIN_AUTH, 'client-cert', 'no token is used at all');
    });

    it('refuses a REDIS_URL that is not a redis URL, without showing it (it may hold a password), and both token sources at once', () => {
      const error = thrownBy(() => loadAppConfig({ REDIS_URL: 'http://:secret@redis', ADMIN_TOKEN: 'a-token-of-sixteen+' })) as Error;
      assert.match(error.message, /REDIS_URL=\*\*\*: must be a redis:\/\/ or rediss:\/\/ URL/);
      assert.doesNotMatch(error.message, /secret/);
      assert.match((thrownBy(() => loadAppConfig({ ADMIN_TOKEN: 'a-token-of-sixteen+', ADMIN_TOKEN_FILE: '/x' })) as Error).message, /set ADMIN_TOKEN or ADMIN_TOKEN_FILE, not both/);
    });
  });
});

describe('INGRESS_THREADS', () => {
  it('takes a count of threads, 0 for none, and refuses what is not one', () => {
    assert.equal(loadAppConfig({ INGRESS_THREADS: '4' }).INGRESS_THREADS, 4);
    assert.equal(loadAppConfig({ INGRESS_THREADS: '0' }).INGRESS_THREADS, 0);
    assert.throws(() => loadAppConfig({ INGRESS_THREADS: '-1' }), /INGRESS_THREADS="-1"/);
    assert.throws(() => loadAppConfig({ INGRESS_THREADS: '65' }), /INGRESS_THREADS="65"/);
  });

  it('is 0 by default with ADMIN_AUTH=client-cert, and refused above 0 with it (the admin certificate is checked on the main thread)', () => {
    const tls = { TLS_CERT_FILE: '/c.pem', TLS_KEY_FILE: '/k.pem', TLS_CA_FILE: '/ca.pem', TLS_CLIENT_AUTH: 'optional', ADMIN_AUTH: 'client-cert' };
    assert.equal(loadAppConfig(tls).INGRESS_THREADS, 0);
    assert.throws(() => loadAppConfig({ ...tls, INGRESS_THREADS: '2' }), /INGRESS_THREADS: must be 0 with ADMIN_AUTH=client-cert/);
  });
});
