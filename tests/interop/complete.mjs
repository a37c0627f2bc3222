// Greedy completion with llama.cpp (node-llama-cpp): node complete.mjs MODEL.gguf PROMPT N_TOKENS
import {getLlama, LlamaCompletion} from "node-llama-cpp";
const llama = await getLlama({gpu: false, build: "never", logLevel: "warn"});
const model = await llama.loadModel({modelPath: process.argv[2]});
const ctx = await model.createContext({contextSize: 512});
const completion = new LlamaCompletion({contextSequence: ctx.getSequence()});
const text = await completion.generateCompletion(process.argv[3], {maxTokens: Number(process.argv[4]), temperature: 0});
process.stdout.write(process.argv[3] + text);
process.exit(0);
