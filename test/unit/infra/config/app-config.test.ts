import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AppConfig, InvalidConfigurationError, loadAppConfig } from '../../../../src/infra/config/app-config.js';
import { assertErrorMentions } from '../../support/domain-error.assertions.js';

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
        LOG_LEVEL: 'info',
        MAX_REQUEST_BYTES: 64 * 1024 * 1024,
        MAX_REQUEST_TIMEOUT_MS: 60_000,
        MODEL_WARMUP_TIMEOUT_MS: 60_000,
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
        STRICT_READINESS: true,
        THROTTLE_RATE: 0,
        THROTTLE_BURST: 0,
        MAX_INFLIGHT_REQUESTS: 0,
        ADAPTIVE_CONCURRENCY: false,
        HTTP_HEADERS_TIMEOUT_MS: 10_000,
        HTTP_REQUEST_TIMEOUT_MS: 60_000,
        MAX_JSON_DEPTH: 64,
      },
    );
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

    it('every bad variable at once', () => {
      refused({ HTTP_PORT: 'abc', LOG_LEVEL: 'loud', HOST: '127.0.0.1' }, 'HTTP_PORT="abc"', 'LOG_LEVEL="loud"');
    });
  });
});
