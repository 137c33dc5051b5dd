// Validate Adaptive Cards with the real adaptivecards library (UMD bundle, no DOM needed).
// stdin: one card (object) or a list of cards. stdout: a list with, per card, its events as
// [phase, event, message] triples; an empty list means the library found nothing wrong.
"use strict";
const path = require("path");
const fs = require("fs");

const AC = require(path.join(__dirname, "..", "..", "node_modules", "adaptivecards", "dist", "adaptivecards.js"));

function validate(json) {
  const card = new AC.AdaptiveCard();
  const ctx = new AC.SerializationContext(AC.Versions.v1_5);
  card.parse(json, ctx);
  const events = [];
  for (let i = 0; i < ctx.eventCount; i++) {
    const e = ctx.getEventAt(i);
    events.push([AC.ValidationPhase[e.phase], AC.ValidationEvent[e.event], e.message]);
  }
  for (const e of card.validateProperties().validationEvents) {
    events.push([AC.ValidationPhase[e.phase], AC.ValidationEvent[e.event], e.message]);
  }
  return events;
}

const input = JSON.parse(fs.readFileSync(0, "utf8"));
const cards = Array.isArray(input) ? input : [input];
process.stdout.write(JSON.stringify(cards.map(validate)));
