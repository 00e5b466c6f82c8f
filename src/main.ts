import { InvalidConfigurationError, loadAppConfig } from './infra/config/app-config.js';
import { startServer } from './app.js';

try {
  const config = loadAppConfig();
  const server = await startServer(config);
  // MODEL_REPOSITORY was readable at start (checked there); one that fails later leaves the server
  // live and not ready, saying why in the log.
  server.modelsLoaded.catch((error: Error) => process.stderr.write(`the model repository could not be loaded: ${error.message}\n`));
  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) {
      process.stderr.write(`${signal} again: exiting now\n`);
      process.exit(130);
    }
    stopping = true;
    // A hard bound: process.exit never waits for a model's run, since none runs in this process
    // (session workers are child processes, killed when it exits; see SessionWorkerPool). A run
    // on a worker thread here would make process.exit wait for it, forever for a runaway run.
    const grace = setTimeout(() => {
      process.stderr.write(`the shutdown took longer than SHUTDOWN_GRACE_MS (${config.SHUTDOWN_GRACE_MS} ms): exiting now\n`);
      process.exit(1);
    }, config.SHUTDOWN_GRACE_MS);
    grace.unref();
    server.shutdown().then(
      () => process.exit(0),
      (error: Error) => {
        process.stderr.write(`the shutdown failed: ${error.message}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
} catch (error) {
  if (error instanceof InvalidConfigurationError) {
    process.stderr.write(`${error.message}\n`);
    process.exit(2);
  }
  throw error;
}
