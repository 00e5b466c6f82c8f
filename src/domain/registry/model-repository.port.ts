import type { DeclaredModelConfig } from './model-config.js';

export interface VersionDirectory {
  readonly version: number;
  /** The model file of that version. */
  readonly modelPath: string;
}

/** One model directory as found in the repository. */
export interface ModelDirectory {
  readonly name: string;
  readonly versions: readonly VersionDirectory[];
  /** The config file's content, or the reason it could not be read or is invalid. */
  readonly config: { readonly ok: true; readonly declared: DeclaredModelConfig } | { readonly ok: false; readonly reason: string };
}

/** Port to the model repository (Triton's word for the directory of models and their versions). */
export abstract class ModelRepository {
  abstract scan(): Promise<ModelDirectory[]>;
  /**
   * Removes what uploads interrupted by a crash left (staged files, and a model directory an upload
   * created and left empty); called at start, before the first scan. Returns what it removed.
   */
  abstract removeAbandonedUploads(): Promise<string[]>;
  /** One model directory as it is now, or undefined when the repository has no such model. */
  abstract scanModel(name: string): Promise<ModelDirectory | undefined>;
  /**
   * A configuration written in the repository's config file format (Triton's `config` override of a
   * load, a saved override); throws an Error naming the offending field.
   */
  abstract parseConfig(text: string): DeclaredModelConfig;
  /**
   * Adds version `version` of `name` (a checked name) with these model-file bytes: written aside,
   * handed to `validate` (the file's path), and made visible in the repository only if that
   * resolves. Throws VERSION_EXISTS when the version is there already: nothing is overwritten.
   */
  abstract addVersion(name: string, version: number, bytes: Uint8Array, validate: (modelPath: string) => Promise<void>): Promise<void>;
  /**
   * The path of a warm-up data file of model `name` (Triton's `<model>/warmup/<file>`), checked to
   * resolve inside that folder (no symlink out); throws INVALID_CONFIG naming the file otherwise.
   */
  abstract warmupFilePath(name: string, file: string): Promise<string>;
  /**
   * The lines of a label file (Triton's `label_filename`, a path relative to the model's directory
   * that must stay inside it): line i names class i. Throws an Error naming the file when it cannot be read.
   */
  abstract readLabels(name: string, labelFilename: string): Promise<string[]>;
  /** sha256 of a model file, hex: what identifies the bytes a version was loaded from. */
  abstract sha256(modelPath: string): Promise<string>;
  /**
   * `text` (an error's message, from the runtime or the file system) with every path inside the
   * repository written as its name there (`<model>/<version>/model.onnx`): what a client, an index
   * or a health report shows never names a path of the server.
   */
  abstract withoutPaths(text: string): string;
}
