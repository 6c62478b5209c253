// node-soap peer of the SOAP throughput benchmark (go run ./bench/soap).
//
// It serves the product's own WSDLs (fetched by the benchmark from
// /nl/jsp/schemawsdl.jsp) with node-soap and implements
// nms:privacyRequest#CreateRequestByName and xtk:queryDef#ExecuteQuery
// (operation "get" by @id) either in memory (--mode mem) or with one INSERT /
// SELECT by primary key through the npm `pg` pool (--mode pg).
//
//   node server.js --port 18100 --wsdl-dir DIR --mode mem --seed 1000 [--lifetime 7200]
//   node server.js --port 18101 --wsdl-dir DIR --mode pg --pg-url URL --table schema.node_privacy_requests
//
// Paths: POST /privacyRequest (nms:privacyRequest), POST /queryDef (xtk:queryDef).
// It listens on 127.0.0.1 only and prints "ready" when it accepts calls.
'use strict';

const fs = require('fs');
const http = require('http');
const path = require('path');
const soap = require('soap');

function args() {
  const out = { port: 0, wsdlDir: '.', mode: 'mem', seed: 0, pgUrl: '', table: 'node_privacy_requests', poolSize: 10, lifetime: 7200 };
  const a = process.argv.slice(2);
  for (let i = 0; i < a.length; i += 2) {
    const k = a[i];
    const v = a[i + 1];
    if (k === '--port') out.port = Number(v);
    else if (k === '--wsdl-dir') out.wsdlDir = v;
    else if (k === '--mode') out.mode = v;
    else if (k === '--seed') out.seed = Number(v);
    else if (k === '--pg-url') out.pgUrl = v;
    else if (k === '--table') out.table = v;
    else if (k === '--pool') out.poolSize = Number(v);
    else if (k === '--lifetime') out.lifetime = Number(v);
    else throw new Error('unknown argument ' + k);
  }
  if (!/^[A-Za-z0-9_.]+$/.test(out.table)) throw new Error('bad table name');
  return out;
}

function fault(message) {
  return {
    Fault: {
      faultcode: 'SOAP-ENV:Server',
      faultstring: message,
    },
  };
}

// queryId finds N in <condition expr="@id = N"/> whatever shape node-soap
// gave the entity (it parses the s:any content into nested objects).
function queryId(entity) {
  let found = null;
  const walk = (o) => {
    if (found !== null || o === null || typeof o !== 'object') return;
    if (o.attributes && typeof o.attributes.expr === 'string') {
      const m = /^\s*@id\s*=\s*(\d+)\s*$/.exec(o.attributes.expr);
      if (m) { found = Number(m[1]); return; }
    }
    for (const k of Object.keys(o)) walk(o[k]);
  };
  walk(entity);
  return found;
}

// val unwraps a parameter node-soap parsed with attributes (an xsi:type
// gives {attributes, $value}).
function val(x) {
  if (x !== null && typeof x === 'object' && '$value' in x) return x.$value;
  return x;
}

function escapeAttr(s) {
  return String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/"/g, '&quot;');
}

function memoryStore(seed) {
  const rows = new Map();
  let next = 0;
  const insert = (ns, value, type, regulation) => {
    next += 1;
    rows.set(next, { ns, value, type, regulation, status: 0, created: new Date() });
    return next;
  };
  for (let i = 0; i < seed; i++) insert('defaultNamespace1', 'seed-' + i + '@example.com', 1, 1);
  return {
    create: async (ns, value, type, regulation) => insert(ns, value, type, regulation),
    status: async (id) => {
      const r = rows.get(id);
      return r === undefined ? null : r.status;
    },
  };
}

function pgStore(url, table, poolSize) {
  const { Pool } = require('pg');
  const pool = new Pool({ connectionString: url, max: poolSize });
  return {
    create: async (ns, value, type, regulation) => {
      const r = await pool.query(
        'INSERT INTO ' + table + ' (namespace, reconciliation_value, type, regulation, status, created) VALUES ($1, $2, $3, $4, 0, now()) RETURNING id',
        [ns, value, type, regulation]);
      return Number(r.rows[0].id);
    },
    status: async (id) => {
      const r = await pool.query('SELECT status FROM ' + table + ' WHERE id = $1', [id]);
      return r.rows.length === 0 ? null : r.rows[0].status;
    },
  };
}

function main() {
  const o = args();
  const store = o.mode === 'pg' ? pgStore(o.pgUrl, o.table, o.poolSize) : memoryStore(o.seed);
  const privacyWsdl = fs.readFileSync(path.join(o.wsdlDir, 'nms_privacyRequest.wsdl'), 'utf8');
  const queryWsdl = fs.readFileSync(path.join(o.wsdlDir, 'xtk_queryDef.wsdl'), 'utf8');

  const privacyService = {
    NmsPrivacyRequest: {
      privacyRequestMethodsSoap: {
        CreateRequestByName: async (a) => {
          const ns = String(val(a.namespaceName) ?? '');
          const value = String(val(a.reconciliationValue) ?? '');
          const type = Number(val(a.type));
          const regulation = Number(val(a.regulation) ?? 1) || 1;
          if (ns !== 'defaultNamespace1') throw fault('Unknown namespace');
          if (value === '' || value.length > 1024) throw fault('Invalid reconciliation value');
          if (type !== 1 && type !== 2) throw fault('Invalid type');
          const id = await store.create(ns, value, type, regulation);
          return { id };
        },
      },
    },
  };
  const queryService = {
    XtkQueryDef: {
      queryDefMethodsSoap: {
        ExecuteQuery: async (a) => {
          const id = queryId(a.entity);
          if (id === null) throw fault('Unsupported queryDef');
          const status = await store.status(id);
          if (status === null) throw fault('No row');
          return { pdomOutput: { $xml: '<gdprRequest status="' + escapeAttr(status) + '"/>' } };
        },
      },
    },
  };

  const server = http.createServer((req, res) => {
    res.statusCode = 404;
    res.end();
  });
  server.keepAliveTimeout = 60000;
  server.listen(o.port, '127.0.0.1', () => {
    soap.listen(server, '/privacyRequest', privacyService, privacyWsdl);
    soap.listen(server, '/queryDef', queryService, queryWsdl);
    process.stdout.write('ready\n');
  });
  const stop = () => server.close(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  // Stops by itself however it was started.
  setTimeout(() => process.exit(0), o.lifetime * 1000).unref();
}

main();
