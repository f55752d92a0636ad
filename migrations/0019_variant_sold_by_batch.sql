-- New orders raise their variant's `sold` in the order writer's own statement, one UPDATE per
-- variant per batch (src/infra/ledger/writer.rs), as `sales.sold` is raised: the row trigger of
-- 0017 updated the same few rows once per order, which cost a sale of sizes about 14% of its
-- orders per second against a sale of one stock (./scripts/bench --variants). Status changes
-- (a failed payment, a lapsed hold) stay with the trigger: they come one order at a time.
DROP TRIGGER orders_variant_sold ON orders;
CREATE TRIGGER orders_variant_sold AFTER UPDATE OF status ON orders
    FOR EACH ROW WHEN (NEW.variant_id IS NOT NULL)
    EXECUTE FUNCTION sale_variants_sold();
