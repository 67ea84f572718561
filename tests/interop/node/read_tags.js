// A non-Python OPC-UA client (node-opcua) for plantctl's interoperability test.
// Connects to one station server with Basic256Sha256 SignAndEncrypt and a username,
// browses the station's folder, reads the tags named on the command line, prints JSON.
// usage: node read_tags.js URL USER PASSWORD CERT.pem KEY.pem APP_URI STATION TAG...
"use strict";
const {
  OPCUAClient, MessageSecurityMode, SecurityPolicy, UserTokenType, AttributeIds,
} = require("node-opcua-client");
const { OPCUACertificateManager } = require("node-opcua-certificate-manager");
const path = require("path");
const os = require("os");
const fs = require("fs");

async function main() {
  const [url, user, password, certFile, keyFile, appUri, station, ...tags] = process.argv.slice(2);
  const pkiRoot = fs.mkdtempSync(path.join(os.tmpdir(), "plantctl-node-pki-"));
  const clientCertificateManager = new OPCUACertificateManager({
    rootFolder: pkiRoot, automaticallyAcceptUnknownCertificate: true,
  });
  const client = OPCUAClient.create({
    applicationName: "plantctl-interop-node",
    applicationUri: appUri,
    securityMode: MessageSecurityMode.SignAndEncrypt,
    securityPolicy: SecurityPolicy.Basic256Sha256,
    certificateFile: certFile,
    privateKeyFile: keyFile,
    clientCertificateManager,
    endpointMustExist: false,
    connectionStrategy: { maxRetry: 2, initialDelay: 200, maxDelay: 1000 },
  });
  await client.connect(url);
  const session = await client.createSession({ type: UserTokenType.UserName, userName: user, password });
  const objects = await session.browse("ns=0;i=85");
  const folder = objects.references.find((r) => r.browseName.name === station);
  if (!folder) throw new Error(`no folder ${station} under Objects`);
  const children = await session.browse(folder.nodeId);
  const names = children.references.map((r) => r.browseName.name);
  const out = { browsed: names.length, values: {} };
  for (const tag of tags) {
    const ref = children.references.find((r) => r.browseName.name === tag || r.nodeId.toString().endsWith(tag));
    if (!ref) throw new Error(`tag ${tag} not found while browsing ${station}`);
    const dv = await session.read({ nodeId: ref.nodeId, attributeId: AttributeIds.Value });
    out.values[tag] = { value: dv.value.value, status: dv.statusCode.name, nodeId: ref.nodeId.toString() };
  }
  await session.close();
  await client.disconnect();
  console.log("RESULT " + JSON.stringify(out));
}

main().catch((err) => { console.error(String(err && err.stack || err)); process.exit(1); });
