// Mirrors the Node videotube backend's `verifyJWT` middleware, which every secured Node route runs
// (npm jsonwebtoken 9, mongoose 8):
//
//   const decodedToken = jwt.verify(token, process.env.ACCESS_TOKEN_SECRET);
//   const user = await User.findById(decodedToken?._id).select("-password -refreshToken");
//   if (!user) throw new ApiError(401, "Invalid Access Token");
//
// with a mongoose model of exactly the Node user schema, on collection `users`. Driven by the
// node-compat Rust tests (dev/node-compat/tests), which make all the assertions.
//
// stdin:  {"mongodbUri", "db", "accessTokenSecret", "tokens": [..], "expectRejected": [..]}
// stdout: {"tokens": [{"decoded", "user"} | {"decoded"?, "error": {"stage", "name", "message"}}],
//          "expectRejected": [{"rejected": true, "error": {"name", "message"}} |
//                             {"rejected": false, "decoded"}]}
// Exit 0 whenever it ran to the end; non-zero only on a crash (bad input, no database).
// The secret is never printed.
import jwt from "jsonwebtoken";
import mongoose, { Schema } from "mongoose";

// The Node version's user model, field for field, `lowecase` misspelling included (mongoose
// ignores the unknown option, so emails keep the case they were written in). Its methods and
// pre-save hook only matter for writes, and there are none here.
const userSchema = new Schema(
  {
    username: { type: String, required: true, unique: true, lowercase: true, trim: true, index: true },
    email: { type: String, required: true, unique: true, trim: true, lowecase: true },
    fullName: { type: String, required: true, trim: true, index: true },
    avatar: { type: String, required: true },
    coverImage: { type: String },
    watchHistory: [{ type: Schema.Types.ObjectId, ref: "Video" }],
    password: { type: String, required: [true, "Password is required"] },
    refreshToken: { type: String },
  },
  { timestamps: true },
);
const User = mongoose.model("User", userSchema); // collection "users"

const errorOf = (e) => ({ name: e?.name ?? "Error", message: String(e?.message ?? e) });

async function middleware(token, secret) {
  let decoded;
  try {
    decoded = jwt.verify(token, secret);
  } catch (e) {
    return { error: { stage: "jwt.verify", ...errorOf(e) } };
  }
  try {
    const user = await User.findById(decoded?._id).select("-password -refreshToken");
    if (!user) {
      return { decoded, error: { stage: "findById", name: "ApiError", message: "Invalid Access Token" } };
    }
    return { decoded, user: user.toJSON() };
  } catch (e) {
    return { decoded, error: { stage: "findById", ...errorOf(e) } };
  }
}

const text = await new Promise((resolve, reject) => {
  let text = "";
  process.stdin.setEncoding("utf8");
  process.stdin.on("data", (chunk) => (text += chunk));
  process.stdin.on("end", () => resolve(text));
  process.stdin.on("error", reject);
});
let input;
try {
  input = JSON.parse(text);
} catch {
  throw new Error("stdin is not one JSON object"); // not JSON.parse's message: it quotes the input
}
const { mongodbUri, db, accessTokenSecret: secret, tokens = [], expectRejected = [] } = input;
if (!mongodbUri || !db || !secret) throw new Error("input needs mongodbUri, db and accessTokenSecret");

// A read-only mirror: it must not change the database under test. autoIndex/autoCreate off, so
// mongoose does not build the schema's indexes (the Rust side owns them, possibly under other
// names) or create the collection. FerretDB v1.24.2 (our local MongoDB) needs no other option:
// checked with these versions; there are no writes, so retryable writes never come into it.
await mongoose.connect(mongodbUri, {
  dbName: db,
  autoIndex: false,
  autoCreate: false,
  serverSelectionTimeoutMS: 10_000,
});
try {
  const out = { tokens: [], expectRejected: [] };
  for (const token of tokens) out.tokens.push(await middleware(token, secret));
  for (const token of expectRejected) {
    try {
      out.expectRejected.push({ rejected: false, decoded: jwt.verify(token, secret) });
    } catch (e) {
      out.expectRejected.push({ rejected: true, error: errorOf(e) });
    }
  }
  process.stdout.write(JSON.stringify(out) + "\n");
} finally {
  await mongoose.disconnect();
}
