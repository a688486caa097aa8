-- Sample tickets, loaded into an empty database. Tickets of 'demo-agent' are reassigned at
-- start-up to the agent named by `[handlers] agent` (default: the local user).
INSERT INTO tickets VALUES
 (48213, 'Charged twice for the November invoice', 'open', 'high', 'Maria Santos', 'maria.santos@lumenlogistics.example', 'Lumen Logistics', 'demo-agent', '2026-11-23T09:12:00Z', '2026-11-23T17:00:00Z'),
 (48220, 'Cannot log in after enabling SSO', 'new', 'urgent', 'Tom Becker', 'tom.becker@northwind.example', 'Northwind Traders', 'demo-agent', '2026-11-23T10:41:00Z', '2026-11-23T12:41:00Z'),
 (48197, 'Export to CSV drops accented characters', 'pending', 'normal', 'Léa Martin', 'lea.martin@atelier-rouge.example', 'Atelier Rouge', 'demo-agent', '2026-11-22T15:05:00Z', '2026-11-25T15:05:00Z'),
 (48175, 'Quanto custa adicionar mais usuários?', 'open', 'low', 'João Pereira', 'joao.pereira@cafe-aurora.example', NULL, 'demo-agent', '2026-11-21T18:30:00Z', NULL),
 (48102, 'Webhook retries flood our endpoint', 'on_hold', 'normal', 'Priya Raman', 'priya.raman@helix-bio.example', 'Helix Bio', 'demo-agent', '2026-11-18T08:00:00Z', '2026-11-28T08:00:00Z'),
 (47990, 'Password reset email never arrives', 'solved', 'normal', 'Sam Okoro', 'sam.okoro@gmail.example', NULL, 'demo-agent', '2026-11-15T11:20:00Z', NULL),
 (48230, 'API rate limit questions for enterprise plan', 'open', 'normal', 'Hannah Weiss', 'hannah.weiss@kestrel.example', 'Kestrel Analytics', 'j.okafor', '2026-11-23T11:02:00Z', '2026-11-24T11:02:00Z');

INSERT INTO messages (ticket_id, author_role, author_name, sent_at, public, body) VALUES
 (48213, 'customer', 'Maria Santos', '2026-11-22T16:40:00Z', 1, 'Hello, our card was charged twice for invoice INV-2026-1187 (EUR 1,240.00 each time, on 20 November). Could you refund the duplicate charge? Our finance team needs this resolved before month end.'),
 (48213, 'system', 'Billing', '2026-11-22T16:41:00Z', 0, 'Payment processor shows two captures for INV-2026-1187: ch_3Q1 (succeeded) and ch_3Q2 (succeeded, flagged duplicate).'),
 (48213, 'agent', 'Support agent', '2026-11-23T09:10:00Z', 0, 'Duplicate confirmed by billing. Refund of the second capture needs finance approval (over EUR 1,000).'),
 (48213, 'customer', 'Maria Santos', '2026-11-23T09:12:00Z', 1, 'Any update? I can send the bank statement if that helps.'),
 (48220, 'customer', 'Tom Becker', '2026-11-23T10:41:00Z', 1, 'Since we switched on SSO with Okta this morning, nobody on our team can log in. We get "SAML response signature invalid". This blocks 40 people.'),
 (48220, 'system', 'Identity', '2026-11-23T10:42:00Z', 0, 'Tenant northwind uploaded a new IdP certificate at 08:55 UTC; fingerprint differs from the one in the SAML metadata.'),
 (48197, 'customer', 'Léa Martin', '2026-11-21T14:00:00Z', 1, 'When I export the client list to CSV, names like "Hélène" become "H?l?ne". Excel shows the same.'),
 (48197, 'agent', 'Support agent', '2026-11-22T15:05:00Z', 1, 'Thank you Léa. Could you tell us which export option you used (Standard or Excel-compatible) and send one affected file?'),
 (48175, 'customer', 'João Pereira', '2026-11-21T18:30:00Z', 1, 'Olá! Temos 5 usuários no plano Starter. Quanto custa adicionar mais 3 usuários? Obrigado.'),
 (48102, 'customer', 'Priya Raman', '2026-11-17T19:45:00Z', 1, 'Your webhook retries hit our endpoint about 200 times per minute during our maintenance window. Is there a way to configure backoff?'),
 (48102, 'agent', 'Support agent', '2026-11-18T08:00:00Z', 1, 'Thanks Priya, I have asked our integrations team whether backoff can be configured per endpoint and will update you by 28 November.'),
 (48102, 'agent', 'Support agent', '2026-11-18T08:01:00Z', 0, 'Waiting on integrations team, INT-2291.'),
 (47990, 'customer', 'Sam Okoro', '2026-11-14T09:00:00Z', 1, 'I requested a password reset three times but no email arrives.'),
 (47990, 'agent', 'Support agent', '2026-11-15T11:20:00Z', 1, 'Your address was on our suppression list after a bounce; I have removed it. The next reset email should arrive within a few minutes.'),
 (48230, 'customer', 'Hannah Weiss', '2026-11-23T11:02:00Z', 1, 'What are the API rate limits on the enterprise plan, and can they be raised for batch imports?');
