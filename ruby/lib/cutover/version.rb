# frozen_string_literal: true

module Cutover
  VERSION = "0.1.0"
end
