// STS GetCallerIdentity with the AWS SDK for JavaScript v3; prints the caller's ARN.
//
//   node caller.mjs chain            the SDK's default provider chain, as an application gets it
//   node caller.mjs process PROFILE  fromProcess: the profile's credential_process in ~/.aws/config
//   node caller.mjs ini PROFILE      fromIni: the profile in the shared credentials file
//   node caller.mjs http             fromHttp: the container endpoint named, as an application may name it
//   node caller.mjs imds             fromInstanceMetadata: IMDS named
//   node caller.mjs chain N          N calls, each with a new client (so its credentials are fetched again);
//                                    then a second line: each call's milliseconds, as JSON (the benchmark's)
//
// The STS endpoint comes from AWS_ENDPOINT_URL_STS, which the SDK reads itself.
// On failure: one line on stderr, the error's name, message and (for the
// container provider) the Code/Message the endpoint sent; exit 1.
import { STSClient, GetCallerIdentityCommand } from "@aws-sdk/client-sts";
import { fromHttp, fromIni, fromInstanceMetadata, fromProcess } from "@aws-sdk/credential-providers";

const [how = "chain", arg] = process.argv.slice(2);

function credentialsFor(how, profile) {
  if (how === "chain") return undefined; // the client's own default chain
  if (how === "process") return fromProcess({ profile });
  if (how === "ini") return fromIni({ profile });
  if (how === "http") return fromHttp({});
  if (how === "imds") return fromInstanceMetadata({});
  throw new Error(`unknown provider ${how}: chain, process, ini, http or imds`);
}

async function callerArn() {
  const client = new STSClient({ region: "us-east-1", credentials: credentialsFor(how, arg), maxAttempts: 1 });
  try {
    return (await client.send(new GetCallerIdentityCommand({}))).Arn;
  } finally {
    client.destroy();
  }
}

try {
  const calls = how === "chain" && arg ? Number(arg) : 1;
  const times = [];
  let arn;
  for (let i = 0; i < calls; i++) {
    const started = performance.now();
    arn = await callerArn();
    times.push(performance.now() - started);
  }
  console.log(arn);
  if (how === "chain" && arg) console.log(JSON.stringify(times));
} catch (error) {
  const sent = [error.Code, error.Message].filter(Boolean).join(": ");
  console.error(`${error.name}: ${error.message}${sent ? ` (${sent})` : ""}`.replace(/\s*\n\s*/g, " | "));
  process.exit(1);
}
