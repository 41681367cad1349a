// Reference descriptors from face-api's own FaceRecognitionNet, on TF.js's
// pure-JavaScript CPU backend.
//
// usage: node face_api_reference.cjs MODEL_DIR INPUT.u8 N OUTPUT.json
//   MODEL_DIR  the `model/` folder of @vladmandic/face-api 1.7.15
//   INPUT.u8   N chips of 150x150 RGB bytes, row-major HWC, back to back
// Needs, resolvable from here: @vladmandic/face-api@1.7.15 and
// @tensorflow/tfjs@4.22.0 (+ @tensorflow/tfjs-backend-wasm@4.22.0, which
// face-api's node build imports; it is not used).
const fs = require('fs');
const path = require('path');
const tf = require('@tensorflow/tfjs');
const faceapi = require('@vladmandic/face-api/dist/face-api.node-wasm.js');

(async () => {
  const [modelDir, input, nStr, output] = process.argv.slice(2);
  const n = Number(nStr);
  await tf.setBackend('cpu');
  await tf.ready();
  const manifest = JSON.parse(
    fs.readFileSync(path.join(modelDir, 'face_recognition_model-weights_manifest.json'), 'utf8'));
  const bin = fs.readFileSync(path.join(modelDir, 'face_recognition_model.bin'));
  const buffer = bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength);
  const weightMap = tf.io.decodeWeights(buffer, manifest[0].weights);
  const net = faceapi.nets.faceRecognitionNet;
  net.loadFromWeightMap(weightMap);
  const bytes = fs.readFileSync(input);
  const size = 150 * 150 * 3;
  if (bytes.length !== n * size) throw new Error(`expected ${n * size} bytes, got ${bytes.length}`);
  const descriptors = [];
  for (let i = 0; i < n; i++) {
    const chip = tf.tensor3d(Int32Array.from(bytes.subarray(i * size, (i + 1) * size)), [150, 150, 3], 'int32');
    const d = await net.computeFaceDescriptor(chip);
    descriptors.push(Array.from(d));
    chip.dispose();
  }
  fs.writeFileSync(output, JSON.stringify({
    backend: tf.getBackend(), tfjs: tf.version.tfjs, face_api: faceapi.version, descriptors,
  }));
})().catch((e) => { console.error(e); process.exit(1); });
