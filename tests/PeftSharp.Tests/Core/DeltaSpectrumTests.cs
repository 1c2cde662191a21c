using System.Text.Json;
using PeftSharp.Core;
using PeftSharp.Tests.Support;
using TorchSharp;

namespace PeftSharp.Tests.Core;

public class DeltaSpectrumTests
{
    [Fact]
    public void Factor_spectrum_equals_the_svd_of_the_formed_product()
    {
        torch.manual_seed(71);
        var b = torch.randn(7, 3);
        var a = torch.randn(3, 5);
        var fromFactors = DeltaSpectrum.OfFactors(b, a, 2.0);
        var direct = torch.linalg.svdvals((b.matmul(a) * 2.0).to(torch.ScalarType.Float64)).data<double>().ToArray();
        Assert.Equal(3, fromFactors.Count);
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(direct[i], fromFactors[i], 4);
        }
    }

    [Fact]
    public void Cli_spectrum_from_file_equals_the_spectrum_from_the_live_layers()
    {
        var adapter = SharedPaths.Fixture("cases", "llama-lora-patterns-layers", "adapter");
        var fromFile = CliRunner.Run("inspect", adapter, "--spectrum", "--json");
        var fromModel = CliRunner.Run("inspect", adapter, "--spectrum", "--json", "--model", SharedPaths.Fixture("bases", "llama"));
        Assert.True(fromFile.ExitCode == 0, fromFile.Stderr);
        Assert.True(fromModel.ExitCode == 0, fromModel.Stderr);
        var a = JsonDocument.Parse(fromFile.Stdout).RootElement.GetProperty("spectrum").EnumerateArray().ToDictionary(e => e.GetProperty("module").GetString()!, e => e.GetProperty("singular_values").EnumerateArray().Select(v => v.GetDouble()).ToArray());
        var b = JsonDocument.Parse(fromModel.Stdout).RootElement.GetProperty("spectrum").EnumerateArray().ToDictionary(e => e.GetProperty("module").GetString()!, e => e.GetProperty("singular_values").EnumerateArray().Select(v => v.GetDouble()).ToArray());
        Assert.Equal(a.Keys.Order(), b.Keys.Order());
        foreach (var (module, values) in a)
        {
            // rank_pattern gives o_proj r = 2 and v_proj r = 4: the file spectrum has exactly r values.
            Assert.Equal(module.EndsWith("o_proj") ? 2 : module.EndsWith("v_proj") ? 4 : 8, values.Length);
            for (var i = 0; i < values.Length; i++)
            {
                Assert.Equal(b[module][i], values[i], 4);
            }
        }
    }
}
