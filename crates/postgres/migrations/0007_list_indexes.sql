-- Keyset paging (`Pagination::after`) compares (sort column, id) rows: these indexes
-- serve that comparison and the order of the lists of instances and organizations,
-- so a page costs the same wherever it is in the list. Names and ids sort byte-wise.
CREATE INDEX organizations_list_name ON organizations (instance_id, name COLLATE "C", id COLLATE "C");
CREATE INDEX organizations_list_created ON organizations (instance_id, created_at, id COLLATE "C");
CREATE INDEX instances_list_name ON instances (name COLLATE "C", id COLLATE "C");
CREATE INDEX instances_list_created ON instances (created_at, id COLLATE "C");
