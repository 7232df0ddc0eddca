// gbench.cc: the C shim over Google Benchmark (gbench.h). C++ only here.
//
// A C benchmark becomes a lambda that captures a copy of its mb_gb_def and
// loops over the C iteration function; a recording reporter forwards to the
// display reporter --benchmark_format selects and keeps every run for C.
#include "gbench.h"

#include <benchmark/benchmark.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <regex.h>
#include <sys/stat.h>
#include <unistd.h>

namespace {

// The flags as last applied ("benchmark_format" -> "json"), and the strings
// Initialize saw (it keeps a pointer to argv[0]).
std::map<std::string, std::string> g_flags;
std::vector<std::string> g_args;

void put(char *err, size_t n, const std::string &s)
{
	if (err && n)
		std::snprintf(err, n, "%s", s.c_str());
}

// Google Benchmark's bool flags take any text; these are the words it reads.
bool bool_word(const std::string &v)
{
	static const char *const words[] = {"true", "false", "1", "0", "yes", "no",
					    "on", "off", "t", "f", "y", "n"};
	for (const char *w : words)
		if (v == w)
			return true;
	return false;
}

bool truthy(const std::string &v)
{
	return v.empty() || v == "true" || v == "1" || v == "yes" || v == "on" || v == "t" ||
	       v == "y";
}

bool number(const std::string &v, double lo, double hi, bool integer)
{
	if (v.empty() || v.size() > 32)
		return false;
	char *end = nullptr;
	errno = 0;
	double x = std::strtod(v.c_str(), &end);
	if (errno || *end || !(x >= lo && x <= hi))
		return false;
	return !integer || x == std::floor(x);
}

// One flag: "" if acceptable, else what is wrong with it.
std::string flag_check(const std::string &arg)
{
	static const char *const bools[] = {
		"benchmark_list_tests", "benchmark_enable_random_interleaving",
		"benchmark_report_aggregates_only", "benchmark_display_aggregates_only",
		"benchmark_counters_tabular"};
	if (arg.compare(0, 2, "--") != 0)
		return "'" + arg + "' is not a --benchmark_* flag";
	size_t eq = arg.find('=');
	std::string key = arg.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
	bool has = eq != std::string::npos;
	std::string v = has ? arg.substr(eq + 1) : "";
	for (const char *b : bools)
		if (key == b)
			return !has || bool_word(v) ? "" : arg + ": expected true or false";
	if (!has)
		return "unknown option or missing value '" + arg + "'";
	if (key == "benchmark_format" || key == "benchmark_out_format")
		return v == "console" || v == "json" || v == "csv" ? ""
								   : arg + ": expected console, json or csv";
	if (key == "benchmark_min_time")
		return number(v, 1e-9, 1e6, false) ? "" : arg + ": expected seconds in (0, 1e6]";
	if (key == "benchmark_min_warmup_time")
		return number(v, 0, 1e6, false) ? "" : arg + ": expected seconds in [0, 1e6]";
	if (key == "benchmark_repetitions")
		return number(v, 1, 1e6, true) ? "" : arg + ": expected an integer in 1..1000000";
	if (key == "v")
		return number(v, 0, 100, true) ? "" : arg + ": expected an integer in 0..100";
	if (key == "benchmark_time_unit")
		return v == "ns" || v == "us" || v == "ms" || v == "s" ? ""
								       : arg + ": expected ns, us, ms or s";
	if (key == "benchmark_color")
		return v == "auto" || bool_word(v) ? "" : arg + ": expected auto, true or false";
	if (key == "benchmark_context") {
		std::stringstream ss(v);
		std::string kv;
		while (std::getline(ss, kv, ','))
			if (kv.find('=') == std::string::npos || kv[0] == '=')
				return arg + ": expected key=value[,key=value...]";
		return "";
	}
	if (key == "benchmark_out") { // the file, or if it is new its directory
		size_t slash = v.rfind('/');
		std::string dir = slash == std::string::npos ? "." : slash ? v.substr(0, slash) : "/";
		struct stat st;
		if (!v.empty() && stat(v.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
			return arg + ": " + v + " is a directory";
		bool ok = v.empty() || access(v.c_str(), W_OK) == 0 ||
			  (errno == ENOENT && access(dir.c_str(), W_OK | X_OK) == 0);
		return ok ? "" : arg + ": cannot write " + v + ": " + std::strerror(errno);
	}
	if (key == "benchmark_filter") {
		// POSIX extended, as Google Benchmark's std::regex(extended); a
		// leading '-' negates. (It also reports a bad one itself, later.)
		std::string re = !v.empty() && v[0] == '-' ? v.substr(1) : v;
		regex_t r;
		int rc = regcomp(&r, re.c_str(), REG_EXTENDED | REG_NOSUB);
		if (rc) {
			char why[128];
			regerror(rc, &r, why, sizeof why);
			return arg + ": not a regular expression (" + why + ")";
		}
		regfree(&r);
		return "";
	}
	return "unknown option '" + arg + "'";
}

// Forwards to the display reporter (or to nothing) and records every run.
class Recorder : public benchmark::BenchmarkReporter {
public:
	explicit Recorder(benchmark::BenchmarkReporter *inner) : inner_(inner), null_(nullptr)
	{
		SetOutputStream(inner ? &inner->GetOutputStream() : &null_);
		SetErrorStream(&err_); // "no benchmark matched" and the like
	}
	bool ReportContext(const Context &c) override
	{
		return inner_ ? inner_->ReportContext(c) : true;
	}
	void ReportRuns(const std::vector<Run> &runs) override
	{
		for (const Run &r : runs)
			record(r);
		if (inner_)
			inner_->ReportRuns(runs);
	}
	void Finalize() override
	{
		if (inner_)
			inner_->Finalize();
	}
	std::string errors() const { return err_.str(); }
	std::vector<mb_gb_run> runs;

private:
	static double counter(const Run &r, const char *key)
	{
		auto it = r.counters.find(key);
		return it == r.counters.end() ? NAN : it->second.value;
	}
	void record(const Run &r)
	{
		mb_gb_run g;
		std::memset(&g, 0, sizeof g);
		std::snprintf(g.name, sizeof g.name, "%s", r.run_name.function_name.c_str());
		std::snprintf(g.run_name, sizeof g.run_name, "%s", r.benchmark_name().c_str());
		std::snprintf(g.aggregate, sizeof g.aggregate, "%s", r.aggregate_name.c_str());
		g.repetition = r.run_type == Run::RT_Aggregate ? -1 : (int)r.repetition_index;
		g.repetitions = (int)r.repetitions;
		g.iterations = r.iterations;
		g.ratio = r.run_type == Run::RT_Aggregate &&
			  r.aggregate_unit == benchmark::StatisticUnit::kPercentage;
		// Aggregates hold (statistic of the accumulated time) x
		// repetitions / iterations, so this is per iteration for both.
		double it = r.iterations > 0 ? (double)r.iterations : 1.0;
		g.real_time_s = g.ratio ? r.real_accumulated_time : r.real_accumulated_time / it;
		g.cpu_time_s = g.ratio ? r.cpu_accumulated_time : r.cpu_accumulated_time / it;
		g.items_per_s = counter(r, "items_per_second");
		g.bytes_per_s = counter(r, "bytes_per_second");
		g.flops_per_s = counter(r, "flops_per_second");
		g.error = r.error_occurred;
		std::snprintf(g.error_msg, sizeof g.error_msg, "%s", r.error_message.c_str());
		runs.push_back(g);
	}
	benchmark::BenchmarkReporter *inner_;
	std::ostream null_; // no streambuf: writes go nowhere
	std::ostringstream err_;
};

// Google Benchmark's error for a hook that failed, with its message.
void fail(benchmark::State &st, const char *prefix, const char *err)
{
	st.SkipWithError((std::string(prefix) + (err[0] ? err : "failed")).c_str());
}

void body(benchmark::State &st, const mb_gb_def &d)
{
	char err[256] = "";
	if (d.setup && d.setup(d.arg, err, sizeof err)) {
		fail(st, "", err);
		return;
	}
	while (st.KeepRunning()) { // the timer runs from the first call
		double s = 0;
		if (d.iter(d.arg, &s, err, sizeof err)) {
			fail(st, "", err);
			break;
		}
		if (d.manual_time) {
			if (!std::isfinite(s) || s < 0) {
				st.SkipWithError("the iteration reported no valid time");
				break;
			}
			st.SetIterationTime(s);
		}
	}
	if (!st.error_occurred() && d.check && d.check(d.arg, err, sizeof err))
		fail(st, "invalid: ", err);
	using C = benchmark::Counter;
	if (d.items > 0)
		st.counters["items_per_second"] = C(d.items, C::kIsIterationInvariantRate);
	if (d.bytes > 0)
		st.counters["bytes_per_second"] =
			C(d.bytes, C::kIsIterationInvariantRate, C::OneK::kIs1024);
	if (d.flops > 0)
		st.counters["flops_per_second"] = C(d.flops, C::kIsIterationInvariantRate);
}

} // namespace

extern "C" int mb_gb_flags_check(int argc, char *const *argv, char *err, size_t n)
{
	for (int i = 0; i < argc; i++) {
		std::string why = flag_check(argv[i]);
		if (!why.empty()) {
			put(err, n, why);
			return -1;
		}
	}
	return 0;
}

extern "C" int mb_gb_init(const char *prog, int argc, char *const *argv, char *err, size_t n)
{
	if (mb_gb_flags_check(argc, argv, err, n))
		return -1;
	// Defaults first, so that a flag set by an earlier call does not stick.
	g_args = {prog ? prog : "moebench",
		  "--benchmark_filter=.",
		  "--benchmark_min_time=0.5",
		  "--benchmark_min_warmup_time=0",
		  "--benchmark_repetitions=1",
		  "--benchmark_format=console",
		  "--benchmark_out_format=json",
		  "--benchmark_out=",
		  "--benchmark_list_tests=false",
		  "--benchmark_enable_random_interleaving=false",
		  "--benchmark_report_aggregates_only=false",
		  "--benchmark_display_aggregates_only=false",
		  "--benchmark_counters_tabular=false",
		  "--benchmark_color=auto",
		  "--benchmark_context=",
		  "--benchmark_time_unit=",
		  "--v=0"};
	g_flags.clear();
	for (const std::string &a : g_args) {
		size_t eq = a.find('=');
		if (a.compare(0, 2, "--") == 0)
			g_flags[a.substr(2, eq == std::string::npos ? eq : eq - 2)] =
				eq == std::string::npos ? "" : a.substr(eq + 1);
	}
	for (int i = 0; i < argc; i++) {
		std::string a = argv[i];
		size_t eq = a.find('=');
		g_args.push_back(a);
		g_flags[a.substr(2, eq == std::string::npos ? eq : eq - 2)] =
			eq == std::string::npos ? "" : a.substr(eq + 1);
	}
	static std::vector<char *> ptrs;
	ptrs.clear();
	for (std::string &s : g_args)
		ptrs.push_back(&s[0]);
	ptrs.push_back(nullptr);
	int c = (int)g_args.size();
	benchmark::SetDefaultTimeUnit(benchmark::kNanosecond);
	benchmark::Initialize(&c, ptrs.data());
	if (c > 1) { // flags_check let through something Initialize did not take
		put(err, n, "unknown option '" + std::string(ptrs[1]) + "'");
		return -1;
	}
	return 0;
}

extern "C" const char *mb_gb_format(void)
{
	auto it = g_flags.find("benchmark_format");
	return it == g_flags.end() ? "console" : it->second.c_str();
}

extern "C" int mb_gb_register(const mb_gb_def *def, char *err, size_t n)
{
	if (!def || !def->name || !def->name[0] || !def->iter || def->iterations < 0) {
		put(err, n, "benchmark definition without a name or an iteration function");
		return -1;
	}
	mb_gb_def d = *def;
	std::string name = def->name;
	d.name = nullptr; // the caller's string may go; the name lives in gbench
	auto *b = benchmark::RegisterBenchmark(
		name.c_str(), [d](benchmark::State &st) { body(st, d); });
	if (d.manual_time)
		b->UseManualTime();
	else
		b->UseRealTime();
	if (d.iterations > 0)
		b->Iterations(d.iterations);
	return 0;
}

extern "C" int mb_gb_run_all(int display, mb_gb_results *out, char *err, size_t n)
{
	std::memset(out, 0, sizeof *out);
	std::unique_ptr<benchmark::BenchmarkReporter> own;
	benchmark::BenchmarkReporter *inner = nullptr;
	if (display) {
		std::string fmt = mb_gb_format();
		if (fmt == "json") {
			own.reset(new benchmark::JSONReporter);
		} else if (fmt == "csv") {
			// Deprecated upstream, but still a --benchmark_format value.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
			own.reset(new benchmark::CSVReporter);
#pragma GCC diagnostic pop
		} else {
			// Google Benchmark's own choice (its GetOutputOptions is internal).
			const std::string &color = g_flags["benchmark_color"];
			const char *term = std::getenv("TERM");
			bool col = color == "auto" ? isatty(STDOUT_FILENO) && term && *term &&
							     std::strcmp(term, "dumb") != 0
						   : truthy(color);
			bool tab = truthy(g_flags["benchmark_counters_tabular"]);
			int oo = (col ? benchmark::ConsoleReporter::OO_Color : 0) |
				 (tab ? benchmark::ConsoleReporter::OO_Tabular : 0);
			own.reset(new benchmark::ConsoleReporter(
				(benchmark::ConsoleReporter::OutputOptions)oo));
			own->SetErrorStream(&std::cout); // its context lines go with the table
		}
		inner = own.get();
	}
	Recorder rec(inner);
	size_t matched = benchmark::RunSpecifiedBenchmarks(&rec);
	std::cout.flush();
	if (matched == 0) {
		std::string e = rec.errors();
		while (!e.empty() && (e.back() == '\n' || e.back() == '\r'))
			e.pop_back();
		size_t nl = e.find('\n');
		put(err, n, e.empty() ? "no benchmark ran" : e.substr(0, nl));
		return -1;
	}
	out->matched = (int)matched;
	out->listed = truthy(g_flags["benchmark_list_tests"]);
	out->n = (int)rec.runs.size();
	if (out->n) {
		out->runs = (mb_gb_run *)std::malloc(rec.runs.size() * sizeof(mb_gb_run));
		if (!out->runs) {
			out->n = 0;
			put(err, n, "out of memory recording benchmark runs");
			return -1;
		}
		std::memcpy(out->runs, rec.runs.data(), rec.runs.size() * sizeof(mb_gb_run));
	}
	return 0;
}

extern "C" void mb_gb_results_free(mb_gb_results *r)
{
	if (!r)
		return;
	std::free(r->runs);
	r->runs = nullptr;
	r->n = 0;
}

extern "C" void mb_gb_clear(void)
{
	benchmark::ClearRegisteredBenchmarks();
}
