-- What inspecting an image found when it was added to the catalogue: the
-- SIF's architecture ('' for directories, or when the gateway could not read
-- the file) and what Slurmgate's labels declare (apptainer.ImageInfo:
-- services, minimum resources, runtimes).
ALTER TABLE images
    ADD COLUMN architecture text NOT NULL DEFAULT '',
    ADD COLUMN info jsonb NOT NULL DEFAULT '{"services": []}';
