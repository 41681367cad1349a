// Reference ages and gender probabilities from face-api's own AgeGenderNet,
// on TF.js's pure-JavaScript CPU backend.
//
// usage: node face_api_age_gender_reference.cjs MODEL_DIR INPUTS.json OUTPUT.json
//   MODEL_DIR    the `model/` folder of @vladmandic/face-api 1.7.15
//   INPUTS.json  [{"raw": FILE, "height": H, "width": W}, ...], each FILE
//                H x W RGB bytes, row-major HWC
// Each input goes to the net as a face tensor, as face-api passes a detected
// face: AgeGenderNet.forward pads it to a centred square, resizes it to
// 112x112 (tf.image.resizeBilinear) and normalises it.
// Needs, resolvable from here: @vladmandic/face-api@1.7.15 and
// @tensorflow/tfjs@4.22.0 (+ @tensorflow/tfjs-backend-wasm@4.22.0, which
// face-api's node build imports; it is not used).
const fs = require('fs');
const path = require('path');
const tf = require('@tensorflow/tfjs');
const faceapi = require('@vladmandic/face-api/dist/face-api.node-wasm.js');

(async () => {
  const [modelDir, inputsJson, output] = process.argv.slice(2);
  await tf.setBackend('cpu');
  await tf.ready();
  const manifest = JSON.parse(
    fs.readFileSync(path.join(modelDir, 'age_gender_model-weights_manifest.json'), 'utf8'));
  const bin = fs.readFileSync(path.join(modelDir, 'age_gender_model.bin'));
  const buffer = bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength);
  const net = faceapi.nets.ageGenderNet;
  net.loadFromWeightMap(tf.io.decodeWeights(buffer, manifest[0].weights));
  const inputs = JSON.parse(fs.readFileSync(inputsJson, 'utf8'));
  const ages = [];
  const genders = [];
  for (const { raw, height, width } of inputs) {
    const bytes = fs.readFileSync(raw);
    if (bytes.length !== height * width * 3) throw new Error(`${raw}: expected ${height * width * 3} bytes`);
    const face = tf.tensor3d(Int32Array.from(bytes), [height, width, 3], 'int32');
    const out = await net.forward(face);
    ages.push(out.age.dataSync()[0]);
    genders.push(Array.from(out.gender.dataSync()));
    out.age.dispose();
    out.gender.dispose();
    face.dispose();
  }
  fs.writeFileSync(output, JSON.stringify({
    backend: tf.getBackend(), tfjs: tf.version.tfjs, face_api: faceapi.version, ages, genders,
  }));
})().catch((e) => { console.error(e); process.exit(1); });
