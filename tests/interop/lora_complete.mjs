// Greedy completion with llama.cpp (node-llama-cpp) and a LoRA adapter:
// node lora_complete.mjs MODEL.gguf ADAPTER.gguf|- PROMPT N_TOKENS
import {getLlama, LlamaCompletion} from "node-llama-cpp";
const llama = await getLlama({gpu: false, build: "never", logLevel: "warn"});
const model = await llama.loadModel({modelPath: process.argv[2]});
const opts = {contextSize: 512};
if (process.argv[3] !== "-") opts.lora = {adapters: [{filePath: process.argv[3], scale: 1}]};
const ctx = await model.createContext(opts);
const completion = new LlamaCompletion({contextSequence: ctx.getSequence()});
const text = await completion.generateCompletion(process.argv[4], {maxTokens: Number(process.argv[5]), temperature: 0});
process.stdout.write(process.argv[4] + text);
process.exit(0);
