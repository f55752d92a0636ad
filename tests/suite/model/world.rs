//! The model: what the sale and each shopper should look like, kept from the operations alone
//! (never read back from the stores), and what it predicts the API answers.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Waiting,
    Admitted,
    /// Admitted, and the ticket's time ran out.
    Lapsed,
    Bought,
    /// Bought, and the payment failed: the units went back.
    Released,
}

#[derive(Debug, Clone)]
pub struct Shopper {
    pub qid: String,
    pub token: String,
    pub state: State,
    /// The last admission ticket the API gave this shopper.
    pub ticket: Option<String>,
    /// (order id, quantity, variant index) of the order this shopper's ticket made.
    pub order: Option<(String, i64, Option<usize>)>,
    /// Redis lost the sale and this shopper has not been put back in line since.
    pub lost: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct Terms {
    pub units: i64,
    pub rate: i64,
    pub max_active: i64,
    pub max_per_order: i64,
    /// Sizes the units are split over (0: one stock, as a sale without variants).
    pub variants: usize,
}

impl Terms {
    /// Each variant's units: `units` split as evenly as it goes.
    pub fn variant_units(&self) -> Vec<i64> {
        let n = self.variants as i64;
        (0..n)
            .map(|i| self.units / n + i64::from(i < self.units % n))
            .collect()
    }
}

/// What an API call should answer: an HTTP status, and for errors the error code or for
/// standings the `status` field and position.
#[derive(Debug, Clone, PartialEq)]
pub struct Expect {
    pub http: u16,
    pub what: String,
    pub position: i64,
}

fn err(http: u16, code: &str) -> Expect {
    Expect {
        http,
        what: code.into(),
        position: 0,
    }
}

#[derive(Debug)]
pub struct Model {
    pub sale: String,
    pub terms: Terms,
    pub open: bool,
    /// Units held by live orders, as the ledger should count them.
    pub sold: i64,
    /// The same per variant.
    pub vsold: Vec<i64>,
    /// The token bucket has seen the sale admitting (the first such tick only starts it).
    pub admitting: bool,
    /// Whole tokens left in the bucket after the last tick.
    pub allowance: i64,
    /// Fresh joins since Redis last lost the sale (the next one's `seq` is this + 1).
    pub seq: i64,
    /// Every shopper, in join order: the index is the join order.
    pub shoppers: Vec<Shopper>,
}

impl Model {
    pub fn new(sale: String, terms: Terms) -> Self {
        Self {
            sale,
            terms,
            open: false,
            sold: 0,
            vsold: vec![0; terms.variants],
            admitting: false,
            allowance: 0,
            seq: 0,
            shoppers: Vec::new(),
        }
    }

    /// Units left, as Redis should have them (the sale is always settled between operations).
    pub fn stock(&self) -> i64 {
        self.terms.units - self.sold
    }

    /// Each variant's units left.
    pub fn vstock(&self) -> Vec<i64> {
        let units = self.terms.variant_units();
        units.iter().zip(&self.vsold).map(|(u, s)| u - s).collect()
    }

    /// An order made (`qty` > 0) or released (< 0).
    pub fn sell(&mut self, qty: i64, variant: Option<usize>) {
        self.sold += qty;
        if let Some(v) = variant {
            self.vsold[v] += qty;
        }
    }

    /// No units left and none held for payment (the model never pays, so every live order
    /// holds its units): until then the line is a waitlist.
    pub fn sold_out_for_good(&self) -> bool {
        self.stock() <= 0 && self.sold <= 0
    }

    pub fn in_line(&self, i: usize) -> bool {
        let s = &self.shoppers[i];
        s.state == State::Waiting && !s.lost
    }

    /// Indices of the shoppers in Redis's line, front first.
    pub fn line(&self) -> Vec<usize> {
        (0..self.shoppers.len())
            .filter(|&i| self.in_line(i))
            .collect()
    }

    pub fn active(&self) -> Vec<usize> {
        self.indices(State::Admitted)
    }

    pub fn indices(&self, state: State) -> Vec<usize> {
        (0..self.shoppers.len())
            .filter(|&i| self.shoppers[i].state == state)
            .collect()
    }

    fn position(&self, i: usize) -> i64 {
        1 + (0..i).filter(|&j| self.in_line(j)).count() as i64
    }

    fn waiting(&self, i: usize) -> Expect {
        Expect {
            http: 200,
            what: match (self.stock() <= 0, self.open) {
                (true, _) => "waitlisted",
                (false, true) => "waiting",
                (false, false) => "closed",
            }
            .into(),
            position: self.position(i),
        }
    }

    /// `GET /status` for shopper `i`. A shopper Redis lost is put back in line by it (unless
    /// sold out): the caller applies `presented` afterwards.
    pub fn status(&self, i: usize) -> Expect {
        let what = match self.shoppers[i].state {
            State::Waiting if self.sold_out_for_good() => "sold_out",
            State::Waiting => return self.waiting(i),
            State::Admitted => "admitted",
            State::Lapsed => "expired",
            State::Released => "failed",
            State::Bought => "purchased",
        };
        Expect {
            http: 200,
            what: what.into(),
            position: 0,
        }
    }

    /// `POST /queue` with shopper `i`'s token: as `/status`, but a place still in line when
    /// the sale is sold out is refused outright.
    pub fn rejoin(&self, i: usize) -> Expect {
        if self.in_line(i) && self.sold_out_for_good() {
            return err(409, "sold_out");
        }
        Expect {
            http: 201,
            ..self.status(i)
        }
    }

    /// The shopper re-presented their token: a place Redis lost is back (if not sold out).
    pub fn presented(&mut self, i: usize) {
        if !self.sold_out_for_good() {
            self.shoppers[i].lost = false;
        }
    }

    /// A fresh join.
    pub fn join(&self) -> Expect {
        if self.sold_out_for_good() {
            return err(409, "sold_out");
        }
        Expect {
            http: 201,
            ..self.waiting(self.shoppers.len())
        }
    }

    /// A checkout by shopper `i` for `qty` units: the answer, and an acceptable other answer
    /// (a sold-out instance may refuse a non-buyer from memory before asking Redis).
    pub fn checkout(&self, i: usize, qty: i64, variant: Option<usize>) -> (Expect, Option<Expect>) {
        let stock = self.stock();
        let left = variant.map_or(stock, |v| stock.min(self.vstock()[v]));
        let e = match self.shoppers[i].state {
            State::Bought => err(200, "same_order"),
            State::Lapsed | State::Released => err(410, "ticket_expired"),
            // Only a shopper once admitted holds a ticket: one waiting again lost the admission
            // with Redis, and the signed ticket still proves it.
            State::Waiting | State::Admitted if stock <= 0 => err(409, "sold_out"),
            State::Waiting | State::Admitted if left <= 0 => err(409, "variant_sold_out"),
            State::Waiting | State::Admitted if left < qty => err(409, "insufficient_stock"),
            State::Waiting | State::Admitted => err(201, "new_order"),
        };
        let alt =
            (stock <= 0 && self.shoppers[i].state != State::Bought).then(|| err(409, "sold_out"));
        (e, alt)
    }

    /// Redis lost the sale: admissions, lapses, the line and the bucket go; what the ledger
    /// knows (orders, failed payments, the open switch) stays. A lapse here only moved Redis's
    /// expiry, not the ticket's, so a lapsed shopper's ticket proves an admission afterwards.
    pub fn lose_redis(&mut self) {
        for s in &mut self.shoppers {
            if matches!(s.state, State::Waiting | State::Admitted | State::Lapsed) {
                // Redis's record of a lapse is gone too: the token's place comes back.
                s.state = State::Waiting;
                s.lost = true;
            }
        }
        self.admitting = false;
        self.allowance = 0;
        self.seq = 0;
    }

    /// Who the next tick admits, front of the line first, given `tokens` whole tokens in the
    /// bucket after its refill.
    pub fn admits(&self, tokens: i64) -> Vec<usize> {
        let active = self.active().len() as i64;
        // Admission counts units: no more in than could buy what is left.
        let per = self.terms.max_per_order.max(1);
        let mut room = tokens.min((self.stock() + per - 1) / per - active);
        if self.terms.max_active > 0 {
            room = room.min(self.terms.max_active - active);
        }
        let line = self.line();
        line[..(room.max(0) as usize).min(line.len())].to_vec()
    }
}
