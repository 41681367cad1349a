// face-api's own pipeline on UTKFace chips: where its detector and its
// 68-landmark alignment put the face box, and what its AgeGenderNet says on
// each box. Measures the framing agesynth's port uses.
//
// usage: node face_api_framing.cjs MODEL_DIR INPUT.u8 N SIZE OUTPUT.json
//   INPUT.u8  N chips of SIZExSIZE RGB bytes, row-major HWC, back to back
// Needs, resolvable from here: @vladmandic/face-api@1.7.15 and
// @tensorflow/tfjs@4.22.0 (+ @tensorflow/tfjs-backend-wasm@4.22.0, which
// face-api's node build imports; it is not used).
const fs = require('fs');
const path = require('path');
const tf = require('@tensorflow/tfjs');
const faceapi = require('@vladmandic/face-api/dist/face-api.node-wasm.js');

function load(net, modelDir, stem) {
  const manifest = JSON.parse(fs.readFileSync(path.join(modelDir, `${stem}-weights_manifest.json`), 'utf8'));
  const bufs = manifest[0].paths.map((p) => fs.readFileSync(path.join(modelDir, p)));
  const bin = Buffer.concat(bufs);
  const buffer = bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength);
  net.loadFromWeightMap(tf.io.decodeWeights(buffer, manifest.flatMap((g) => g.weights)));
}

(async () => {
  const [modelDir, input, nStr, sizeStr, output] = process.argv.slice(2);
  const n = Number(nStr);
  const size = Number(sizeStr);
  const backend = process.env.TFJS_BACKEND || 'cpu';
  if (backend === 'wasm') require('@tensorflow/tfjs-backend-wasm');
  await tf.setBackend(backend);
  await tf.ready();
  load(faceapi.nets.ssdMobilenetv1, modelDir, 'ssd_mobilenetv1_model');
  load(faceapi.nets.faceLandmark68Net, modelDir, 'face_landmark_68_model');
  load(faceapi.nets.ageGenderNet, modelDir, 'age_gender_model');
  const bytes = fs.readFileSync(input);
  const len = size * size * 3;
  if (bytes.length !== n * len) throw new Error(`expected ${n * len} bytes, got ${bytes.length}`);
  const results = [];
  const box = (b) => ({ x: b.x, y: b.y, width: b.width, height: b.height });
  const ageGender = async (img, b) => {
    const [face] = await faceapi.extractFaceTensors(img, [b]);
    const p = await faceapi.nets.ageGenderNet.predictAgeAndGender(face);
    const crop = face.shape;
    face.dispose();
    return { age: p.age, gender: p.gender, probability: p.genderProbability, crop };
  };
  for (let i = 0; i < n; i++) {
    const img = tf.tensor3d(Int32Array.from(bytes.subarray(i * len, (i + 1) * len)), [size, size, 3], 'int32');
    const r = await faceapi.detectSingleFace(img, new faceapi.SsdMobilenetv1Options({ minConfidence: 0.5 }))
      .withFaceLandmarks();
    if (!r) {
      results.push(null);
    } else {
      results.push({
        score: r.detection.score,
        detection: box(r.detection.box),
        aligned: box(r.alignedRect.box),
        by_detection: await ageGender(img, r.detection),
        by_aligned: await ageGender(img, r.alignedRect),
      });
    }
    img.dispose();
    if (i % 10 === 9) console.error(`${i + 1}/${n}`);
  }
  fs.writeFileSync(output, JSON.stringify({
    backend: tf.getBackend(), tfjs: tf.version.tfjs, face_api: faceapi.version, size, results,
  }));
})().catch((e) => { console.error(e); process.exit(1); });
