// Integration tests start real servers on a shared 2-core machine: a hook or test gets 60 s, not
// jest's 5 s default (`testTimeout` inside a jest project entry is ignored; only this applies per project).
jest.setTimeout(60000);
