// Tokenizes each test string of a llama.cpp .inp file with llama.cpp (vocab only): node tokenize.mjs MODEL.gguf FILE.inp
import {getLlama} from "node-llama-cpp";
import fs from "fs";
const llama = await getLlama({gpu: false, build: "never", logLevel: "error"});
const model = await llama.loadModel({modelPath: process.argv[2], vocabOnly: true});
const text = fs.readFileSync(process.argv[3], "utf8");
const parts = text.split("\n__ggml_vocab_test__\n");
for (const p of parts) process.stdout.write(model.tokenize(p, false).join(" ") + "\n");
process.exit(0);
